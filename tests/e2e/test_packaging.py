"""Packaging: the image (runner/Dockerfile), the compose files, the Prometheus config and alert
rules, and the Grafana dashboard, each checked with the real tool that consumes it."""

from __future__ import annotations

import json
import secrets
import subprocess
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
import yaml

from docker_runner_client import (
    ContainerOpts,
    DockerEvent,
    ExecOptions,
    ExecTimeout,
    HttpDockerRunnerClient,
    JobUpdate,
    NotFound,
    RunnerTransportError,
    Unauthorized,
)
from tests.support.docker_env import SESSION_ID, SESSION_LABELS, TEST_IMAGE
from tests.support.packaging_tools import (
    BASE_COMPOSE,
    DASHBOARD,
    DATASOURCES,
    GRAFANA_DIR,
    MONITORING_COMPOSE,
    PROMETHEUS_DIR,
    REPO,
    BuiltImage,
    build_image,
    compose,
    compose_project,
    dashboard_expressions,
    docker_socket,
    ensure_debian_base,
    finite_series,
    free_port,
    remove_image,
    require_tool,
    runner_env_file,
    running_prometheus,
    walk,
    write_env_file,
)
from tests.support.server import TEST_SECRET, make_settings, running_runner
from tests.support.waiting import wait_for

INSTANCE_LABEL = "dev.docker-runner.instance"


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _datasource_uid() -> str:
    (provisioning,) = sorted(DATASOURCES.glob("*.yml"))
    (datasource,) = _yaml(provisioning)["datasources"]
    assert datasource["type"] == "prometheus"
    return str(datasource["uid"])


def _container_path(mounts: list[Any], source: Path) -> str:
    """Where the compose service mounts the host directory ``source``."""
    for mount in mounts:
        host, target = (mount.split(":")[:2]) if isinstance(mount, str) else (mount["source"], mount["target"])
        if Path(host).resolve() == source.resolve():
            return str(target)
    raise AssertionError(f"{source} is not mounted; mounts: {mounts}")


# ---- 1: compose files -----------------------------------------------------------------------


@pytest.mark.docker
def test_compose_config_accepts_base_and_monitoring_overlay(tmp_path: Path) -> None:
    """docker-compose config accepts the base file and base + overlay, wired as documented."""
    compose_bin = require_tool("docker-compose", "docker-compose")
    secret = secrets.token_urlsafe(48)
    settings = runner_env_file(tmp_path / "runner.env", DOCKER_RUNNER_SHARED_SECRET=secret)
    variables = write_env_file(
        tmp_path / "compose.env",
        {"DOCKER_RUNNER_PORT": 17999, "DOCKER_GID": 4242, "DOCKER_RUNNER_ENV_FILE": settings},
    )

    base = yaml.safe_load(compose(compose_bin, variables, [BASE_COMPOSE], "config").stdout)
    assert set(base["services"]) == {"runner"}
    runner = base["services"]["runner"]
    assert runner["image"] == "docker-runner:latest"
    assert Path(runner["build"]["context"]).resolve() == REPO
    assert runner["build"]["dockerfile"] == "runner/Dockerfile"
    assert runner["environment"]["DOCKER_RUNNER_SHARED_SECRET"] == secret  # env_file: DOCKER_RUNNER_ENV_FILE
    assert runner["environment"]["DOCKER_RUNNER_HOST"] == "0.0.0.0"  # beats the file's 127.0.0.1
    assert str(runner["environment"]["DOCKER_RUNNER_PORT"]) == "17999"
    (port,) = runner["ports"]
    assert (int(port["published"]), int(port["target"])) == (17999, 17999)
    assert [str(gid) for gid in runner["group_add"]] == ["4242"]
    assert any(str(v).startswith("/var/run/docker.sock:/var/run/docker.sock") for v in runner["volumes"])
    assert runner["restart"] == "unless-stopped"
    assert "/v1/ready" in " ".join(runner["healthcheck"]["test"])

    full = yaml.safe_load(compose(compose_bin, variables, [BASE_COMPOSE, MONITORING_COMPOSE], "config").stdout)
    assert set(full["services"]) == {"runner", "prometheus", "grafana"}
    prometheus, grafana = full["services"]["prometheus"], full["services"]["grafana"]
    assert prometheus["image"].startswith("prom/prometheus:")
    assert grafana["image"].startswith("grafana/grafana:")
    config_dir = _container_path(prometheus["volumes"], PROMETHEUS_DIR)
    assert f"--config.file={config_dir}/prometheus.yml" in prometheus["command"]
    assert _container_path(grafana["volumes"], GRAFANA_DIR / "provisioning") == "/etc/grafana/provisioning"
    (provider,) = _yaml(GRAFANA_DIR / "provisioning" / "dashboards" / "docker-runner.yml")["providers"]
    assert _container_path(grafana["volumes"], DASHBOARD.parent) == provider["options"]["path"]
    assert str(prometheus["environment"]["DOCKER_RUNNER_PORT"]) == "17999"


@pytest.mark.docker
def test_prometheus_scrapes_the_port_of_the_env_file(tmp_path: Path, docker_api: docker.APIClient) -> None:
    """The overlay's Prometheus entrypoint, run in a busybox shell as in prom/prometheus, writes the
    scrape target runner:<DOCKER_RUNNER_PORT> before it hands its arguments to Prometheus."""
    compose_bin = require_tool("docker-compose", "docker-compose")
    settings = runner_env_file(tmp_path / "runner.env", DOCKER_RUNNER_SHARED_SECRET=secrets.token_urlsafe(48))
    variables = write_env_file(
        tmp_path / "compose.env", {"DOCKER_RUNNER_PORT": 17999, "DOCKER_RUNNER_ENV_FILE": settings}
    )
    full = yaml.safe_load(compose(compose_bin, variables, [BASE_COMPOSE, MONITORING_COMPOSE], "config").stdout)
    prometheus = full["services"]["prometheus"]
    fake_prometheus = tmp_path / "prometheus"
    fake_prometheus.write_text('#!/bin/sh\ncat /prometheus/targets/runner.json\necho "args: $*"\n')
    fake_prometheus.chmod(0o755)
    config_dir = _container_path(prometheus["volumes"], PROMETHEUS_DIR)
    box = docker_api.create_container(
        TEST_IMAGE,
        entrypoint=[part.replace("$$", "$") for part in prometheus["entrypoint"]],  # compose's own escape
        command=prometheus["command"],
        environment={key: str(value) for key, value in prometheus["environment"].items()},
        labels=SESSION_LABELS,
        host_config=docker_api.create_host_config(
            binds={str(PROMETHEUS_DIR): {"bind": config_dir, "mode": "ro"}, str(fake_prometheus): "/bin/prometheus"},
            tmpfs={"/prometheus": ""},
        ),
    )
    try:
        docker_api.start(box)
        assert docker_api.wait(box, timeout=60)["StatusCode"] == 0
        output = docker_api.logs(box).decode()
    finally:
        docker_api.remove_container(box, force=True)
    targets_line, args_line = output.strip().splitlines()
    assert json.loads(targets_line) == [{"targets": ["runner:17999"]}]
    assert f"--config.file={config_dir}/prometheus.yml" in args_line.split()
    config = _yaml(PROMETHEUS_DIR / "prometheus.yml")
    (job,) = config["scrape_configs"]
    assert job["file_sd_configs"] == [{"files": ["/prometheus/targets/runner.json"]}]


# ---- 2: the image, under compose ------------------------------------------------------------


@pytest.fixture(scope="module")
def runner_image(docker_api: docker.APIClient) -> Iterator[BuiltImage]:
    """runner/Dockerfile built once for the module under a tag of this session, removed afterwards."""
    ensure_debian_base()
    built = build_image(docker_api, f"docker-runner-test:{SESSION_ID}")
    print(f"image {built.tag} built in {built.seconds:.0f} s")
    try:
        yield built
    finally:
        remove_image(docker_api, built)


@pytest.mark.docker
@pytest.mark.timeout(1500)
def test_image_serves_under_compose(docker_api: docker.APIClient, runner_image: BuiltImage, tmp_path: Path) -> None:
    """The image runs under the base compose file as a non-root user that drives the engine through
    group_add; the client works through the published port; down leaves nothing behind."""
    compose_bin = require_tool("docker-compose", "docker-compose")
    image = docker_api.inspect_image(runner_image.tag)["Config"]
    assert image["User"] == "docker-runner:docker-runner"
    assert "/v1/health" in " ".join(image["Healthcheck"]["Test"])

    port = free_port()
    secret = secrets.token_urlsafe(48)
    instance = f"packaging-{uuid.uuid4().hex[:8]}"
    socket_gid = docker_socket().stat().st_gid
    settings = runner_env_file(
        tmp_path / "runner.env", DOCKER_RUNNER_SHARED_SECRET=secret, DOCKER_RUNNER_INSTANCE=instance
    )
    variables = write_env_file(
        tmp_path / "compose.env",
        {
            "DOCKER_RUNNER_PORT": port,
            "DOCKER_GID": socket_gid,
            "DOCKER_SOCKET": docker_socket(),
            "DOCKER_RUNNER_ENV_FILE": settings,
            "DOCKER_RUNNER_IMAGE": runner_image.tag,
        },
    )
    project_name = f"drpackaging{uuid.uuid4().hex[:10]}"
    try:
        with (
            compose_project(docker_api, compose_bin, variables, [BASE_COMPOSE], project_name) as project,
            HttpDockerRunnerClient(f"http://127.0.0.1:{port}", secret) as client,
        ):
            (service,) = docker_api.containers(filters={"label": f"com.docker.compose.project={project.name}"})

            def ready() -> bool:
                try:
                    return client.ready() == "ready"
                except RunnerTransportError:
                    return False

            wait_for(ready, timeout=60, interval=0.2, what="/v1/ready through the published port")
            inspected = docker_api.inspect_container(service["Id"])
            assert inspected["HostConfig"]["GroupAdd"] == [str(socket_gid)]
            whoami = docker_api.exec_create(service["Id"], ["id", "-u"])
            assert docker_api.exec_start(whoami["Id"]).decode().strip() == "10001"

            box = client.start_container(
                ContainerOpts(image=TEST_IMAGE, cmd=["sleep", "3600"], labels=dict(SESSION_LABELS))
            )
            try:
                result = client.exec_run(box.container_id, "echo packaged", ExecOptions(timeout_ms=10_000))
                assert (result.exit_code, result.stdout) == (0, "packaged\n")
            finally:
                client.remove_container(box.container_id, force=True)

            def healthy() -> bool:
                state: dict[str, Any] = docker_api.inspect_container(service["Id"])["State"]
                return bool(state.get("Health", {}).get("Status") == "healthy")

            wait_for(healthy, timeout=90, interval=0.5, what="the compose healthcheck (/v1/ready) to pass")
    finally:
        made = docker_api.containers(all=True, filters={"label": f"{INSTANCE_LABEL}={instance}"})
        for container in made:
            docker_api.remove_container(container["Id"], force=True, v=True)
    assert project.down is not None and project.down.returncode == 0, project.down.stderr if project.down else ""
    assert project.leftovers == []
    assert made == [], "the runner's own containers should have been removed through it"


@pytest.mark.docker
def test_image_serves_the_browser_terminal(docker_api: docker.APIClient, runner_image: BuiltImage) -> None:
    """The image carries the built terminal bundle: with DOCKER_RUNNER_UI=true, /ui/terminal is served."""
    environment = {
        "DOCKER_RUNNER_SHARED_SECRET": secrets.token_urlsafe(48),
        "DOCKER_RUNNER_UI": "true",
        "DOCKER_HOST": "unix:///nonexistent.sock",  # the page needs no engine
    }
    container = docker_api.create_container(runner_image.tag, environment=environment, labels=dict(SESSION_LABELS))
    probe = (
        "import urllib.request as r; base = 'http://127.0.0.1:7071/ui/terminal'; "
        "page = r.urlopen(base, timeout=2); script = r.urlopen(base + '/page.js', timeout=2).read(); "
        "print(page.status, page.headers.get_content_type(), len(script))"
    )

    def served() -> str | None:
        run = docker_api.exec_create(container["Id"], ["python3", "-c", probe])
        output = docker_api.exec_start(run["Id"]).decode()
        return output if docker_api.exec_inspect(run["Id"])["ExitCode"] == 0 else None

    try:
        docker_api.start(container["Id"])
        status, content_type, script_bytes = wait_for(served, timeout=60, interval=0.5, what="/ui/terminal").split()
    finally:
        docker_api.remove_container(container["Id"], force=True)
    assert (status, content_type) == ("200", "text/html")
    assert int(script_bytes) > 100_000  # xterm.js and the page, bundled


# ---- 3: Prometheus config and rules ---------------------------------------------------------

ALERTS = (
    "DockerRunnerDown",
    "DockerRunnerEngineUnreachable",
    "DockerRunnerHigh5xxRate",
    "DockerRunnerExecTimeouts",
    "DockerRunnerJobsFailing",
)
RUNNER = 'job="docker-runner", instance="runner:7071"'


def _alert_expressions() -> dict[str, str]:
    groups = _yaml(PROMETHEUS_DIR / "alerts.yml")["groups"]
    return {rule["alert"]: rule["expr"] for group in groups for rule in group["rules"]}


def _promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    promtool = require_tool("promtool", "prometheus")
    return subprocess.run(
        [promtool, *map(str, args)], capture_output=True, text=True, cwd=PROMETHEUS_DIR, timeout=60, check=False
    )


@pytest.mark.docker
def test_promtool_accepts_config_and_rules() -> None:
    """promtool check config (its rule files included) and check rules pass on the shipped files."""
    config = _yaml(PROMETHEUS_DIR / "prometheus.yml")
    # relative to the config file, so the same paths hold in the container and here
    assert config["rule_files"] and not any(Path(rule).is_absolute() for rule in config["rule_files"])
    assert config["global"]["scrape_interval"] == "15s"
    (job,) = config["scrape_configs"]
    assert (job["job_name"], job["metrics_path"]) == ("docker-runner", "/metrics")
    assert job["file_sd_configs"]  # runner:<port>, see test_prometheus_scrapes_the_port_of_the_env_file
    for args in (("check", "config", "prometheus.yml"), ("check", "rules", "alerts.yml")):
        result = _promtool(*args)
        assert result.returncode == 0, result.stdout + result.stderr
    assert set(_alert_expressions()) == set(ALERTS)


@pytest.mark.docker
def test_promtool_accepts_the_stack_config() -> None:
    """The Swarm stack's Prometheus config (dns_sd_configs on tasks.runner) passes promtool, rules included."""
    result = _promtool("check", "config", "prometheus-stack.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def _series(name: str, values: str, **labels: str) -> dict[str, str]:
    extra = "".join(f', {key}="{value}"' for key, value in labels.items())
    return {"series": f"{name}{{{RUNNER}{extra}}}", "values": values}


def _requests(route: str, status: str, values: str) -> dict[str, str]:
    method = "GET" if route == "/metrics" else "POST"
    return _series("docker_runner_http_requests_total", values, route=route, method=method, status=status)


@pytest.mark.docker
def test_alert_expressions_fire_on_failures_only(tmp_path: Path) -> None:
    """Each alert's expression selects the failing runner on failure series and nothing on healthy ones
    (scrapes of /metrics and exec timeouts' 504 do not count as 5xx)."""
    expressions = _alert_expressions()
    failing = [
        _series("up", "0x60"),
        _series("docker_runner_engine_up", "0x60"),
        _requests("/v1/containers/start", "502", "0+3x60"),
        _requests("/v1/containers/start", "201", "0+1x60"),
        _requests("/metrics", "200", "0+50x60"),
        _series("docker_runner_exec_runs_total", "0+1x60", outcome="exited"),
        _series("docker_runner_exec_runs_total", "0+1x60", outcome="timeout"),
        _series("docker_runner_exec_timeouts_total", "0+1x60", kind="total"),
        _series("docker_runner_jobs_total", "0+3x60", status="error"),
        _series("docker_runner_jobs_total", "0+1x60", status="completed"),
    ]
    healthy = [
        _series("up", "1x60"),
        _series("docker_runner_engine_up", "1x60"),
        _requests("/v1/containers/start", "502", "0x60"),
        _requests("/v1/containers/start", "201", "0+5x60"),
        _requests("/v1/exec/run", "504", "0+2x60"),
        _requests("/metrics", "200", "0+1x60"),
        _series("docker_runner_exec_runs_total", "0+10x60", outcome="exited"),
        _series("docker_runner_exec_runs_total", "0+1x60", outcome="timeout"),
        _series("docker_runner_exec_timeouts_total", "0+1x60", kind="total"),
        _series("docker_runner_jobs_total", "0+1x60", status="error"),
        _series("docker_runner_jobs_total", "0+8x60", status="completed"),
        _series("docker_runner_jobs_total", "0+1x60", status="cancelled"),
    ]
    fired = {
        "DockerRunnerDown": ('up{job="docker-runner", instance="runner:7071"}', 0),
        "DockerRunnerEngineUnreachable": ('docker_runner_engine_up{job="docker-runner", instance="runner:7071"}', 0),
        "DockerRunnerHigh5xxRate": ('{instance="runner:7071"}', 0.75),
        "DockerRunnerExecTimeouts": ('{instance="runner:7071"}', 0.5),
        "DockerRunnerJobsFailing": ('{instance="runner:7071"}', 0.75),
    }
    unit_tests = {
        "rule_files": [str(PROMETHEUS_DIR / "alerts.yml")],
        "evaluation_interval": "15s",
        "tests": [
            {
                "interval": "15s",
                "input_series": failing,
                "promql_expr_test": [
                    {
                        "expr": expressions[alert],
                        "eval_time": "10m",
                        "exp_samples": [{"labels": labels, "value": value}],
                    }
                    for alert, (labels, value) in fired.items()
                ],
            },
            {
                "interval": "15s",
                "input_series": healthy,
                "promql_expr_test": [
                    {"expr": expressions[alert], "eval_time": "10m", "exp_samples": []} for alert in ALERTS
                ],
            },
        ],
    }
    tests_file = tmp_path / "alerts_test.yml"
    tests_file.write_text(json.dumps(unit_tests), encoding="utf-8")
    result = _promtool("test", "rules", tests_file)
    assert result.returncode == 0, result.stdout + result.stderr


# ---- 4: every dashboard query against a real Prometheus --------------------------------------


def _hold_until(prometheus_query: Any, expr: str, what: str) -> None:
    wait_for(lambda: prometheus_query(expr), timeout=30, interval=0.2, what=what)


@pytest.mark.docker
@pytest.mark.timeout(300)
def test_every_dashboard_query_has_data(docker_api: docker.APIClient, tmp_path: Path) -> None:
    """Every PromQL expression of the Grafana dashboard returns a series with a value from a real
    Prometheus scraping a live runner, and every alert rule evaluates without error."""
    binary = require_tool("prometheus", "prometheus")
    expressions = dashboard_expressions(json.loads(DASHBOARD.read_text(encoding="utf-8")))
    assert expressions
    settings = make_settings(pools=json.dumps([{"image": TEST_IMAGE, "min": 1, "max": 2}]))
    fresh_image = docker_api.inspect_image(TEST_IMAGE)["Id"]  # the same image by a name no pool has: fresh runs
    case = f"packaging-{uuid.uuid4().hex[:8]}"
    with (
        running_runner(settings) as server,
        HttpDockerRunnerClient(server.url, TEST_SECRET) as client,
        HttpDockerRunnerClient(server.url, TEST_SECRET) as events_client,
    ):
        config = _yaml(PROMETHEUS_DIR / "prometheus.yml")  # the shipped one, sped up and pointed here
        config["global"].update(scrape_interval="1s", scrape_timeout="1s", evaluation_interval="1s")
        config["rule_files"] = [str(PROMETHEUS_DIR / rule) for rule in config["rule_files"]]
        (job,) = config["scrape_configs"]
        targets_dir = tmp_path / "targets"
        subprocess.run(
            ["sh", str(PROMETHEUS_DIR / "write-targets.sh")],
            env={"TARGETS_DIR": str(targets_dir), "RUNNER_HOST": "127.0.0.1", "DOCKER_RUNNER_PORT": str(server.port)},
            check=True,
            timeout=30,
        )
        job["file_sd_configs"] = [{"files": [str(targets_dir / "runner.json")], "refresh_interval": "1s"}]
        with running_prometheus(binary, config) as prometheus:
            query = prometheus.query
            _hold_until(query, 'up{job="docker-runner"} == 1', "the first scrape of the runner")

            events: list[DockerEvent] = []

            def consume() -> None:
                for event in events_client.events(filters={"type": ["container"], "label": [f"case={case}"]}):
                    events.append(event)
                    if event.action == "destroy":
                        return

            subscriber = threading.Thread(target=consume, daemon=True)
            subscriber.start()
            box = client.start_container(
                ContainerOpts(image=TEST_IMAGE, cmd=["sleep", "3600"], labels={**SESSION_LABELS, "case": case})
            )
            try:
                _hold_until(query, 'docker_runner_sse_subscribers{stream="events"} >= 1', "a scrape of the SSE stream")
                for _ in range(3):
                    assert client.exec_run(box.container_id, "echo hi").stdout == "hi\n"
                assert client.run(TEST_IMAGE, "echo pooled").pooled  # the Pools row, and the Runs row
                assert not client.run(fresh_image, "echo fresh").pooled
                assert client.run(fresh_image, "sleep 5", timeout_ms=300).timed_out
                assert client.run_tests(TEST_IMAGE, {"run_tests.sh": b"echo ok"}).exit_code == 0
                job = client.submit_job(TEST_IMAGE, None, command=["true"], labels=dict(SESSION_LABELS))
                ended = [event for event in client.job_events(job.job_id) if isinstance(event, JobUpdate)][-1]
                assert ended.status == "completed"  # the Jobs row
                with pytest.raises(ExecTimeout):
                    client.exec_run(box.container_id, "sleep 5", ExecOptions(timeout_ms=300))
                with (
                    pytest.raises(Unauthorized),
                    HttpDockerRunnerClient(server.url, "not-the-secret-" + "x" * 32) as stranger,
                ):
                    stranger.inspect_container(box.container_id)
                with pytest.raises(NotFound):
                    client.inspect_container("0" * 64)  # an engine 404: docker_runner_engine_errors_total
                with client.open_exec(box.container_id, ["cat"]) as session:
                    _hold_until(query, "docker_runner_ws_sessions >= 1", "a scrape of the interactive session")
                    session.close_stdin()
                    assert session.wait(timeout=10) == 0
            finally:
                client.remove_container(box.container_id, force=True)
                subscriber.join(timeout=30)
            assert not subscriber.is_alive(), f"the event stream did not end; saw {[e.action for e in events]}"

            def missing() -> list[str]:
                return [f"{title}: {expr}" for title, expr in expressions if not finite_series(query(expr))]

            try:
                wait_for(lambda: not missing(), timeout=60, interval=0.5, what="every dashboard query to have data")
            except AssertionError as exc:
                raise AssertionError(f"{exc}; without data:\n" + "\n".join(missing())) from None

            def rules_evaluated() -> bool:
                return all(rule["health"] == "ok" for rule in prometheus.rules())

            wait_for(rules_evaluated, timeout=30, interval=0.5, what="every alert rule to evaluate")
            assert {rule["name"] for rule in prometheus.rules()} == set(ALERTS)
    leftovers = docker_api.containers(all=True, filters={"label": f"{INSTANCE_LABEL}={settings.instance}"})
    assert leftovers == []


# ---- 5: the dashboard's datasource ----------------------------------------------------------


def test_dashboard_uses_only_the_provisioned_datasource() -> None:
    """Every panel and query of the dashboard names the provisioned Prometheus by its fixed uid; no
    template variables, no other datasource."""
    uid = _datasource_uid()
    expected = {"type": "prometheus", "uid": uid}
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    references = [(path, value) for path, value in walk(dashboard) if path.endswith(".datasource")]
    assert references
    assert [(path, value) for path, value in references if value != expected] == []
    panels = [
        node
        for _path, node in walk(dashboard)
        if isinstance(node, dict) and "gridPos" in node and node.get("type") != "row"
    ]
    assert panels
    for panel in panels:
        assert panel.get("datasource") == expected, panel["title"]
        assert panel["targets"], panel["title"]
        assert all(target.get("datasource") == expected for target in panel["targets"]), panel["title"]
    assert dashboard.get("templating", {}).get("list", []) == []
    assert [expr for _title, expr in dashboard_expressions(dashboard) if "$" in expr] == []
    ids = [panel["id"] for _path, panel in walk(dashboard) if isinstance(panel, dict) and "gridPos" in panel]
    assert len(ids) == len(set(ids))
    assert dashboard["uid"] and dashboard.get("id") is None
