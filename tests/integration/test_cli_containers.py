"""``docker-runner-client`` health, ps, start, stop, rm, --help, and the exit codes of failures,
each as a real subprocess against a real runner."""

from __future__ import annotations

import json
import socket
import uuid

import pytest

from docker_runner_client import HttpDockerRunnerClient
from docker_runner_client._cli import build_parser
from tests.conftest import sleeper_opts
from tests.support.cli import cli, cli_env, text
from tests.support.docker_env import SESSION_LABELS, TEST_IMAGE
from tests.support.server import RunningServer, make_settings, running_runner

pytestmark = pytest.mark.docker

SESSION_LABEL_ARGS = [arg for key, value in SESSION_LABELS.items() for arg in ("--label", f"{key}={value}")]


@pytest.fixture
def case_label() -> str:
    return "cli-case=" + uuid.uuid4().hex[:10]


def _one_error_line(stderr: str, code: str) -> None:
    assert stderr.count("\n") == 1 and stderr.startswith(f"docker-runner-client: {code}: "), stderr


def test_health_answers_without_a_secret(runner: RunningServer) -> None:
    """health prints the runner's health and readiness, as a table or JSON; it needs no secret."""
    code, stdout, _ = text(cli(runner.url, "health", env=cli_env(runner.url, secret="")))
    assert (code, stdout.split()) == (0, ["health", "ok", "ready", "ready"])
    code, stdout, _ = text(cli(runner.url, "health", "--json"))
    assert code == 0 and json.loads(stdout) == {"url": runner.url, "health": "ok", "ready": "ready"}


def test_health_without_an_engine_is_the_upstream_code() -> None:
    """A runner whose engine is away: health still prints, and exits 105 naming docker_unavailable."""
    with running_runner(make_settings(docker_host="unix:///nonexistent/docker.sock")) as away:
        code, stdout, stderr = text(cli(away.url, "health"))
    assert code == 105 and "health  ok" in stdout
    _one_error_line(stderr, "docker_unavailable")


def test_start_ps_stop_and_rm(runner: RunningServer, client: HttpDockerRunnerClient, case_label: str) -> None:
    """start prints the id; ps shows it with its TTL left (table, -q, --json, -a); stop and rm end it."""
    name = "cli-" + uuid.uuid4().hex[:10]
    args = ["start", *SESSION_LABEL_ARGS, "--label", case_label, "--ttl", "600", "--keep", "--name", name]
    code, stdout, stderr = text(cli(runner.url, *args, "--env", "GREETING=hi", TEST_IMAGE, "sleep", "3600"))
    assert code == 0, stderr
    container_id = stdout.strip()
    try:
        assert len(container_id) == 64
        assert client.exec_run(container_id, "echo $GREETING").stdout == "hi\n"
        code, stdout, _ = text(cli(runner.url, "ps", "--label", case_label))
        header, row = stdout.splitlines()
        assert header.split() == ["CONTAINER", "ID", "NAME", "IMAGE", "STATUS", "CREATED", "TTL", "LEFT"]
        assert row.split()[:4] == [container_id[:12], name, TEST_IMAGE, "running"]
        assert row.split()[-1] in ("10m00s", "9m59s", "9m58s")
        assert text(cli(runner.url, "ps", "-q", "--no-trunc", "--label", case_label))[1] == container_id + "\n"
        listed = json.loads(text(cli(runner.url, "ps", "--json", "--label", case_label))[1])
        assert [(item["containerId"], item["ttlSeconds"]) for item in listed] == [(container_id, 600)]
        assert 590 <= listed[0]["ttlLeftSeconds"] <= 600
        assert text(cli(runner.url, "stop", "-t", "0", container_id))[:2] == (0, container_id + "\n")
        assert text(cli(runner.url, "ps", "-q", "--label", case_label))[1] == ""
        assert "exited" in text(cli(runner.url, "ps", "-a", "--label", case_label))[1]
        assert text(cli(runner.url, "rm", container_id))[:2] == (0, container_id + "\n")
        assert client.list_containers(all_containers=True, labels=dict([case_label.split("=")])) == []
    finally:
        client.remove_container(container_id, force=True)


def test_rm_goes_on_after_a_failure(runner: RunningServer, client: HttpDockerRunnerClient) -> None:
    """rm removes every container it can, reports the one it cannot (running, without -f), and
    exits with that failure's code."""
    stopped = [client.start_container(sleeper_opts(auto_remove=False)) for _ in range(2)]
    running = client.start_container(sleeper_opts())
    try:
        for started in stopped:
            client.stop_container(started.container_id, timeout_sec=0)
        ids = [stopped[0].container_id, running.container_id, stopped[1].container_id]
        code, stdout, stderr = text(cli(runner.url, "rm", *ids))
        assert (code, stdout.split()) == (104, [stopped[0].container_id, stopped[1].container_id])
        _one_error_line(stderr, "conflict")
        remaining = {item.container_id for item in client.list_containers(all_containers=True, labels=SESSION_LABELS)}
        assert running.container_id in remaining and not remaining & {started.container_id for started in stopped}
    finally:
        for started in (*stopped, running):
            client.remove_container(started.container_id, force=True)


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_failures_are_one_line_and_a_distinct_exit_code(runner: RunningServer, client: HttpDockerRunnerClient) -> None:
    """Not found 103, conflict 104, validation 100, unauthorized 101, transport 106: one line each."""
    code, _, stderr = text(cli(runner.url, "start", "runner-test/no-such-image:latest"))
    assert code == 103
    _one_error_line(stderr, "no_such_image")
    name = "cli-" + uuid.uuid4().hex[:10]
    first = client.start_container(sleeper_opts(name=name))
    try:
        code, _, stderr = text(cli(runner.url, "start", *SESSION_LABEL_ARGS, "--name", name, TEST_IMAGE, "sleep", "60"))
        assert code == 104
        _one_error_line(stderr, "conflict")
    finally:
        client.remove_container(first.container_id, force=True)
    code, _, stderr = text(cli(runner.url, "start", "--ttl", "0", TEST_IMAGE))
    assert code == 100
    _one_error_line(stderr, "validation_error")
    code, _, stderr = text(cli(runner.url, "ps", env=cli_env(runner.url, secret="not-the-secret-" + "x" * 30)))
    assert code == 101
    _one_error_line(stderr, "invalid_signature")
    down = f"http://127.0.0.1:{_closed_port()}"
    code, _, stderr = text(cli(down, "ps", env=cli_env(down)))
    assert code == 106
    _one_error_line(stderr, "runner_unreachable")


def test_usage_errors_exit_2(runner: RunningServer) -> None:
    """Bad arguments, a missing command, a bad KEY=VALUE and a missing secret are usage errors (2)."""
    assert cli(runner.url, "start").returncode == 2
    assert cli(runner.url, "no-such-command").returncode == 2
    code, _, stderr = text(cli(runner.url, "start", "--label", "novalue", TEST_IMAGE))
    assert code == 2
    _one_error_line(stderr, "bad_argument")
    code, _, stderr = text(cli(runner.url, "ps", env=cli_env(runner.url, secret="")))
    assert code == 2
    _one_error_line(stderr, "no_shared_secret")
    assert "DOCKER_RUNNER_SHARED_SECRET" in stderr
    assert cli(runner.url, "start", "--ttl", "soon", TEST_IMAGE).returncode == 2


def _command_paths() -> list[list[str]]:
    """Every command and sub-command the parser knows, as argument lists."""
    paths: list[list[str]] = []

    def walk(parser: object, prefix: list[str]) -> None:
        for action in getattr(parser, "_actions", []):
            for name, child in (getattr(action, "choices", None) or {}).items():
                if hasattr(child, "_actions"):
                    paths.append([*prefix, name])
                    walk(child, [*prefix, name])

    walk(build_parser(), [])
    return paths


def test_help_on_every_command(runner: RunningServer) -> None:
    """--help works on the top level and on every command and sub-command, and lists the exit codes."""
    paths = _command_paths()
    names = {path[0] for path in paths}
    commands = "health ps start stop rm exec run test cp shell logs events jobs job pools terminal"
    assert names == set(commands.split())
    code, stdout, _ = text(cli(runner.url, "--help"))
    assert code == 0 and "exit codes:" in stdout and "124  timeout" in stdout
    for path in paths:
        code, stdout, _ = text(cli(runner.url, *path, "--help"))
        assert code == 0 and stdout.startswith("usage: docker-runner-client " + " ".join(path)), path
