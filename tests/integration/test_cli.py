"""The console script: settings from arguments and the environment, fail-fast on a bad secret."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import docker
import httpx
import pytest

from docker_runner import envfile
from docker_runner.containers.spec import INSTANCE_LABEL, MANAGED_LABEL
from docker_runner.workloads.pool import POOL_LABEL
from tests.support.docker_env import SESSION_LABELS, TEST_IMAGE
from tests.support.waiting import wait_for

RUNNER = [sys.executable, "-m", "docker_runner"]


def _env(**values: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("DOCKER_RUNNER_")}
    env.update(values)
    return env


@pytest.mark.parametrize("secret", [None, "", "too-short"])
def test_bad_secret_exits_with_one_line(secret: str | None) -> None:
    env = _env() if secret is None else _env(DOCKER_RUNNER_SHARED_SECRET=secret)
    done = subprocess.run(RUNNER, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "DOCKER_RUNNER_SHARED_SECRET" in lines[0]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_arguments_beat_environment_and_env_file(tmp_path: Path) -> None:
    """--port beats DOCKER_RUNNER_PORT; --ensure-secret writes a secret into the env file and says so."""
    env_file = tmp_path / ".env"
    env_file.write_text("DOCKER_RUNNER_SHARED_SECRET=\nDOCKER_RUNNER_PORT=1\n")
    port = _free_port()
    process = subprocess.Popen(
        [*RUNNER, "--env-file", str(env_file), "--ensure-secret", "--port", str(port)],
        env=_env(DOCKER_HOST="unix:///nonexistent.sock"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: _answers(port), timeout=30, what="the runner to listen")
        assert len(envfile.parse(env_file.read_text())["DOCKER_RUNNER_SHARED_SECRET"]) >= 32
        ready = httpx.get(f"http://127.0.0.1:{port}/v1/ready")
        assert ready.status_code == 503  # started without an engine
    finally:
        process.terminate()
        stdout, _ = process.communicate(timeout=30)
    assert "generated a shared secret" in stdout
    # uvicorn shuts down gracefully, then re-raises the signal it caught
    assert process.returncode in (0, -signal.SIGTERM)


def _answers(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/v1/health", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def test_json_log_format_from_the_environment(tmp_path: Path) -> None:
    """DOCKER_RUNNER_LOG_FORMAT=json: the process writes its request lines as one JSON object each."""
    port = _free_port()
    env = _env(
        DOCKER_RUNNER_SHARED_SECRET="s" * 40,
        DOCKER_RUNNER_LOG_FORMAT="json",
        DOCKER_RUNNER_PORT=str(port),
        DOCKER_HOST="unix:///nonexistent.sock",
    )
    process = subprocess.Popen(RUNNER, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: _answers(port), timeout=30, what="the runner to listen")
        httpx.get(f"http://127.0.0.1:{port}/v1/ready", headers={"x-request-id": "json-line-check"})
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=30)
    request_lines = [json.loads(line) for line in stderr.splitlines() if "json-line-check" in line]
    assert len(request_lines) == 1
    line = request_lines[0]
    assert (line["logger"], line["route"], line["status"], line["method"]) == (
        "docker_runner.requests",
        "/v1/ready",
        503,
        "GET",
    )
    assert "s" * 40 not in stderr


@pytest.mark.docker
def test_a_taken_port_stops_the_start_before_it_sweeps(docker_api: docker.APIClient) -> None:
    """A second runner of the same instance on a port already taken exits with one line naming
    DOCKER_RUNNER_PORT, and leaves the first runner's pooled containers alone."""
    instance = "cli-" + uuid.uuid4().hex[:8]
    labels = {**SESSION_LABELS, MANAGED_LABEL: "true", INSTANCE_LABEL: instance, POOL_LABEL: TEST_IMAGE}
    pooled = docker_api.create_container(TEST_IMAGE, ["sleep", "60"], labels=labels)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        env = _env(
            DOCKER_RUNNER_SHARED_SECRET="s" * 40,
            DOCKER_RUNNER_PORT=str(taken.getsockname()[1]),
            DOCKER_RUNNER_INSTANCE=instance,
        )
        done = subprocess.run(RUNNER, env=env, capture_output=True, text=True, timeout=60)
    try:
        assert done.returncode == 2
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and "DOCKER_RUNNER_PORT" in lines[0], done.stderr
        assert docker_api.containers(all=True, filters={"id": pooled["Id"]})
    finally:
        docker_api.remove_container(pooled["Id"], force=True)
