"""Shared fixtures: the real engine, a real runner on a free port, clients, and the session sweep."""

from __future__ import annotations

import os
from collections.abc import Iterator

import docker
import pytest

from docker_runner_client import ContainerOpts, HttpDockerRunnerClient, StartedContainer
from tests.support.docker_env import SESSION_LABELS, TEST_IMAGE, engine_problem, sweep
from tests.support.redis_server import RedisServer, redis_problem, running_redis
from tests.support.server import TEST_SECRET, RunningServer, running_runner

_engine_problem: str | None = None
_engine_checked = False


def _require_engine() -> None:
    global _engine_checked, _engine_problem
    if not _engine_checked:
        _engine_problem = engine_problem()
        _engine_checked = True
    if _engine_problem is not None:
        if os.environ.get("RUNNER_REQUIRE_DOCKER") == "1":
            pytest.fail(f"RUNNER_REQUIRE_DOCKER=1 but {_engine_problem}")
        pytest.skip(_engine_problem)


@pytest.fixture(autouse=True)
def _docker_marker(request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker("docker") is not None:
        _require_engine()


@pytest.fixture(scope="session")
def docker_api() -> Iterator[docker.APIClient]:
    """Direct engine access for checks behind the runner's back; sweeps the session's containers."""
    _require_engine()
    api = docker.APIClient(version="auto")
    try:
        yield api
    finally:
        sweep(api)
        api.close()


@pytest.fixture(scope="session")
def runner(docker_api: docker.APIClient) -> Iterator[RunningServer]:
    with running_runner() as server:
        yield server


@pytest.fixture
def client(runner: RunningServer) -> Iterator[HttpDockerRunnerClient]:
    with HttpDockerRunnerClient(runner.url, TEST_SECRET) as runner_client:
        yield runner_client


def sleeper_opts(**changes: object) -> ContainerOpts:
    values: dict[str, object] = {"image": TEST_IMAGE, "cmd": ["sleep", "3600"], "labels": dict(SESSION_LABELS)}
    values.update(changes)
    return ContainerOpts(**values)  # type: ignore[arg-type]


@pytest.fixture(params=["exec", "channel"])
def exec_path(request: pytest.FixtureRequest) -> str:
    """The path exec runs take (docs/protocol.md 3.2, "Paths"): containers started with fastExec off or on."""
    return str(request.param)


def path_opts(exec_path: str, **changes: object) -> ContainerOpts:
    """sleeper_opts for a container whose exec runs take ``exec_path``."""
    return sleeper_opts(fast_exec=exec_path == "channel", **changes)


@pytest.fixture
def path_container(client: HttpDockerRunnerClient, exec_path: str) -> Iterator[StartedContainer]:
    """A running busybox container with fastExec as ``exec_path`` asks, removed afterwards."""
    started = client.start_container(path_opts(exec_path))
    try:
        yield started
    finally:
        client.remove_container(started.container_id, force=True)


@pytest.fixture
def container(client: HttpDockerRunnerClient) -> Iterator[StartedContainer]:
    """A running busybox container, removed afterwards."""
    started = client.start_container(sleeper_opts())
    try:
        yield started
    finally:
        client.remove_container(started.container_id, force=True)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A real redis-server on a free loopback port (nothing persisted); .url is redis://127.0.0.1:PORT/0.
    Skipped without redis-server, failed instead where CI asks for the engines (RUNNER_REQUIRE_*=1)."""
    problem = redis_problem()
    if problem is not None:
        if "1" in (os.environ.get("RUNNER_REQUIRE_CLUSTER"), os.environ.get("RUNNER_REQUIRE_DOCKER")):
            pytest.fail(f"redis-server is required but {problem}")
        pytest.skip(problem)
    with running_redis() as server:
        yield server
