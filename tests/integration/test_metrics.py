"""GET /metrics and the request log: what is counted, with bounded label values."""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from docker_runner.log_format import JsonFormatter
from docker_runner_client import ExecOptions, ExecTimeout, HttpDockerRunnerClient, NotFound
from tests.conftest import sleeper_opts
from tests.support.docker_env import SESSION_LABELS, TEST_IMAGE
from tests.support.server import TEST_SECRET, RunningServer, make_settings, running_runner
from tests.support.signed import signed_request
from tests.support.waiting import wait_for

pytestmark = pytest.mark.docker

INSTANCE_LABEL = "dev.docker-runner.instance"


def samples(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(url + "/metrics").text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(url: str, name: str, **labels: str) -> float:
    return samples(url).get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture
def fresh() -> Iterator[RunningServer]:
    with running_runner(make_settings()) as server:
        yield server


def test_metrics_are_open_and_in_prometheus_format(fresh: RunningServer) -> None:
    response = httpx.get(fresh.url + "/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    names = {family.name for family in text_string_to_metric_families(response.text)}
    for name in (
        "docker_runner_http_requests",
        "docker_runner_http_request_duration_seconds",
        "docker_runner_auth_failures",
        "docker_runner_exec_runs",
        "docker_runner_exec_duration_seconds",
        "docker_runner_exec_timeouts",
        "docker_runner_exec_kills",
        "docker_runner_sse_subscribers",
        "docker_runner_ws_sessions",
        "docker_runner_nonce_cache_entries",
        "docker_runner_engine_up",
        "docker_runner_managed_containers",
        "docker_runner_jobs",
        "docker_runner_jobs_active",
        "docker_runner_job_duration_seconds",
        "docker_runner_runs",
        "docker_runner_run_duration_seconds",
    ):
        assert name in names, name
    assert value(fresh.url, "docker_runner_engine_up") == 1.0


def test_requests_execs_and_failures_are_counted(fresh: RunningServer) -> None:
    with HttpDockerRunnerClient(fresh.url, TEST_SECRET) as client:
        started = client.start_container(sleeper_opts())
        try:
            assert value(fresh.url, "docker_runner_managed_containers") >= 1
            client.exec_run(started.container_id, "true")
            with pytest.raises(ExecTimeout):
                client.exec_run(started.container_id, "sleep 5", ExecOptions(timeout_ms=200))
            with pytest.raises(NotFound):
                client.inspect_container("does-not-exist")
        finally:
            client.remove_container(started.container_id, force=True)
    signed_request(fresh.url, "GET", "/v1/containers/inspect?containerId=x", secret="q" * 40)
    url = fresh.url
    assert value(url, "docker_runner_http_requests_total", route="/v1/exec/run", method="POST", status="200") == 1
    assert value(url, "docker_runner_http_requests_total", route="/v1/exec/run", method="POST", status="504") == 1
    assert (
        value(url, "docker_runner_http_requests_total", route="/v1/containers/inspect", method="GET", status="404") == 1
    )
    assert value(url, "docker_runner_auth_failures_total", code="invalid_signature") == 1
    assert value(url, "docker_runner_exec_runs_total", outcome="exited") == 1
    assert value(url, "docker_runner_exec_runs_total", outcome="timeout") == 1
    assert value(url, "docker_runner_exec_timeouts_total", kind="total") == 1
    assert value(url, "docker_runner_exec_kills_total", reason="timeout") == 1
    assert value(url, "docker_runner_engine_errors_total", status="404") >= 1
    assert value(url, "docker_runner_exec_duration_seconds_count") == 2


def test_streams_and_sessions_are_gauged(fresh: RunningServer) -> None:
    with HttpDockerRunnerClient(fresh.url, TEST_SECRET) as client:
        started = client.start_container(sleeper_opts())
        try:
            with client.open_exec(started.container_id, "sleep 30") as session:
                assert session.exec_id
                assert value(fresh.url, "docker_runner_ws_sessions") == 1
            wait_for(lambda: value(fresh.url, "docker_runner_ws_sessions") == 0, what="the session gauge to drop")
            target = "/v1/events/sse"
            with httpx.stream("GET", fresh.url + target, headers=_signed(target), timeout=10) as response:
                assert response.status_code == 200
                wait_for(lambda: value(fresh.url, "docker_runner_sse_subscribers", stream="events") == 1, what="gauge")
            wait_for(lambda: value(fresh.url, "docker_runner_sse_subscribers", stream="events") == 0, what="gauge down")
        finally:
            client.remove_container(started.container_id, force=True)


def _signed(target: str) -> dict[str, str]:
    import time

    from docker_runner_client._signing import sign_headers

    return sign_headers(TEST_SECRET, "GET", target, b"", str(int(time.time() * 1000)), str(uuid.uuid4()))


def test_label_values_are_bounded(fresh: RunningServer) -> None:
    """Ids and raw paths never become label values: 50 distinct containers and paths add no series."""
    for index in range(50):
        signed_request(fresh.url, "GET", f"/v1/containers/inspect?containerId=id-{uuid.uuid4().hex}")
        httpx.get(fresh.url + f"/no/such/path/{index}/{uuid.uuid4().hex}")
        signed_request(fresh.url, "GET", f"/v1/containers/{uuid.uuid4().hex}/archive?path=/x")
    text = httpx.get(fresh.url + "/metrics").text
    assert "id-" not in text and "/no/such" not in text
    routes = {
        dict(labels)["route"] for (name, labels) in samples(fresh.url) if name == "docker_runner_http_requests_total"
    }
    assert routes == {"/v1/containers/inspect", "unmatched", "/v1/containers/{container_id}/archive", "/metrics"}


def _request_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """The request log lines captured so far (each is written once its answer has gone out)."""
    return [record for record in caplog.records if record.name == "docker_runner.requests"]


def test_one_structured_line_per_request(fresh: RunningServer, caplog: pytest.LogCaptureFixture) -> None:
    """JSON when asked: request id, method, route, status, container id, elapsed ms; no ticket ever."""
    with caplog.at_level(logging.INFO, logger="docker_runner.requests"):
        response = signed_request(
            fresh.url, "GET", "/v1/containers/inspect?containerId=abc", headers={"x-request-id": "req-123"}
        )
        ticket = httpx.post(fresh.url + "/v1/events/sse?ticket=SECRET-TICKET-VALUE")
        wait_for(lambda: len(_request_lines(caplog)) >= 2, what="the line of the last request")  # after its answer
    assert response.headers["x-request-id"] == "req-123" and ticket.status_code in (401, 405)
    records = _request_lines(caplog)
    assert len(records) == 2
    line = json.loads(JsonFormatter().format(records[0]))
    assert line["requestId"] == "req-123" and line["method"] == "GET" and line["status"] == 404
    assert line["route"] == "/v1/containers/inspect" and isinstance(line["elapsedMs"], float)
    assert all("SECRET-TICKET-VALUE" not in JsonFormatter().format(record) for record in records)


def test_exec_line_names_the_container(fresh: RunningServer, caplog: pytest.LogCaptureFixture) -> None:
    with HttpDockerRunnerClient(fresh.url, TEST_SECRET) as client:
        started = client.start_container(sleeper_opts())
        try:
            with caplog.at_level(logging.INFO, logger="docker_runner.requests"):
                client.exec_run(started.container_id, "true")
                wait_for(lambda: _request_lines(caplog), what="the line of the exec run")  # after its answer
        finally:
            client.remove_container(started.container_id, force=True)
    fields = [getattr(r, "fields", {}) for r in _request_lines(caplog)]
    assert any(f.get("containerId") == started.container_id and f.get("route") == "/v1/exec/run" for f in fields)


def test_container_routes_log_the_container_and_image(fresh: RunningServer, caplog: pytest.LogCaptureFixture) -> None:
    """start logs the image and the new container id; the other container routes log the id they act on."""

    def logged() -> dict[str, dict[str, object]]:
        return {getattr(r, "fields", {}).get("route"): getattr(r, "fields", {}) for r in _request_lines(caplog)}

    with (
        HttpDockerRunnerClient(fresh.url, TEST_SECRET) as client,
        caplog.at_level(logging.INFO, logger="docker_runner.requests"),
    ):
        started = client.start_container(sleeper_opts())
        client.inspect_container(started.container_id)
        client.container_labels(started.container_id)
        client.touch_container(started.container_id)
        client.stop_container(started.container_id, timeout_sec=0)
        client.remove_container(started.container_id, force=True)
        client.ensure_image(TEST_IMAGE)
        wait_for(lambda: "/v1/images/ensure" in logged(), what="the line of the last request")  # after its answer
    fields = logged()
    start = fields["/v1/containers/start"]
    assert (start.get("image"), start.get("containerId")) == (TEST_IMAGE, started.container_id)
    for route in ("inspect", "labels", "touch", "stop", "remove"):
        assert fields[f"/v1/containers/{route}"].get("containerId") == started.container_id, route
    assert fields["/v1/images/ensure"].get("image") == TEST_IMAGE


def test_engine_down_shows_as_zero(tmp_path: Path) -> None:
    with running_runner(make_settings(docker_host=f"unix://{tmp_path}/absent.sock")) as server:
        assert value(server.url, "docker_runner_engine_up") == 0.0
        assert not re.search(r"^docker_runner_managed_containers ", httpx.get(server.url + "/metrics").text, re.M)


def _series_of(url: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {labels: number for (sample, labels), number in samples(url).items() if sample == name}


def test_jobs_are_counted_by_status_with_their_duration(docker_api: docker.APIClient) -> None:
    """Each ended job adds one to its final status and one duration observation (creation to end)."""
    with running_runner(make_settings()) as server, HttpDockerRunnerClient(server.url, TEST_SECRET) as client:
        for script in ("true", "exit 3"):
            job = client.submit_job(TEST_IMAGE, None, command=["sh", "-c", script], labels=dict(SESSION_LABELS))
            assert list(client.job_events(job.job_id))  # ends after the final update
        sleeper = client.submit_job(TEST_IMAGE, None, command=["sleep", "30"], labels=dict(SESSION_LABELS))
        assert value(server.url, "docker_runner_jobs_active") == 1
        assert client.cancel_job(sleeper.job_id).status == "cancelled"
        url = server.url
        for status in ("completed", "error", "cancelled"):
            assert value(url, "docker_runner_jobs_total", status=status) == 1, status
            assert value(url, "docker_runner_job_duration_seconds_count", status=status) == 1, status
            assert value(url, "docker_runner_job_duration_seconds_sum", status=status) > 0, status
        assert value(url, "docker_runner_jobs_active") == 0
    assert docker_api.containers(all=True, filters={"label": f"{INSTANCE_LABEL}={server.settings.instance}"}) == []


def test_runs_and_test_runs_are_counted_by_kind_outcome_and_pool(docker_api: docker.APIClient) -> None:
    """One series per (kind, outcome, pooled): pooled and fresh runs, a test run, a failure, a
    timeout and a run the runner could not start each land on theirs, with a duration per (kind, pooled)."""
    fresh_image = docker_api.inspect_image(TEST_IMAGE)["Id"]  # the same image, by a name no pool has
    settings = make_settings(pools=json.dumps([{"image": TEST_IMAGE, "min": 1, "max": 2}]))
    with running_runner(settings) as server, HttpDockerRunnerClient(server.url, TEST_SECRET) as client:
        assert client.run(TEST_IMAGE, "true").pooled
        assert not client.run(fresh_image, "exit 3").pooled
        assert client.run(fresh_image, "sleep 5", timeout_ms=300).timed_out
        tested = client.run_tests(TEST_IMAGE, {"run_tests.sh": b"echo ok"})
        assert (tested.exit_code, tested.pooled) == (0, True)
        with pytest.raises(NotFound):
            client.run(f"runner-test/absent-{uuid.uuid4().hex[:8]}:1", "true")
        runs = _series_of(server.url, "docker_runner_runs_total")
        durations = _series_of(server.url, "docker_runner_run_duration_seconds_count")
    counted = {labels: number for labels, number in runs.items() if number}
    assert counted == {
        (("kind", "run"), ("outcome", "exited"), ("pooled", "true")): 1,
        (("kind", "run"), ("outcome", "failed"), ("pooled", "false")): 1,
        (("kind", "run"), ("outcome", "timeout"), ("pooled", "false")): 1,
        (("kind", "run"), ("outcome", "error"), ("pooled", "false")): 1,
        (("kind", "test"), ("outcome", "exited"), ("pooled", "true")): 1,
    }
    assert len(runs) == 2 * 5 * 2  # every (kind, outcome, pooled) from the start, nothing else: no image label
    assert durations == {
        (("kind", "run"), ("pooled", "true")): 1,
        (("kind", "run"), ("pooled", "false")): 3,
        (("kind", "test"), ("pooled", "true")): 1,
        (("kind", "test"), ("pooled", "false")): 0,
    }
    assert docker_api.containers(all=True, filters={"label": f"{INSTANCE_LABEL}={settings.instance}"}) == []
