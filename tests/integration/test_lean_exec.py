"""The lean client of an exec run's three engine calls (engine/lean.py), against the real engine:
the same answers and refusals as docker-py's, and a kept connection the engine has closed is
replaced without the call failing."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import docker
import pytest

from docker_runner.engine.core import engine_errors
from docker_runner.engine.lean import IDLE_KEPT, LeanExecClient, unix_socket_of
from docker_runner.errors import ApiError
from tests.support.docker_env import SESSION_LABELS, TEST_IMAGE

pytestmark = pytest.mark.docker


@pytest.fixture
def lean() -> Iterator[LeanExecClient]:
    path = unix_socket_of(None)
    assert path is not None
    client = LeanExecClient(path, 30.0)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def sleeper(docker_api: docker.APIClient) -> Iterator[str]:
    created = docker_api.create_container(TEST_IMAGE, ["sleep", "600"], labels=SESSION_LABELS)
    docker_api.start(created["Id"])
    try:
        yield str(created["Id"])
    finally:
        docker_api.remove_container(created["Id"], force=True)


def _config(cmd: list[str]) -> dict[str, object]:
    return {"AttachStdout": True, "AttachStderr": True, "AttachStdin": False, "Tty": False, "Cmd": cmd}


def _output(raw: socket.socket, first: bytes) -> bytes:
    data = first
    while chunk := raw.recv(65536):
        data += chunk
    raw.close()
    return data


def test_create_start_and_inspect_give_the_engines_answers(
    lean: LeanExecClient, sleeper: str, docker_api: docker.APIClient
) -> None:
    version = docker_api.api_version
    exec_id = lean.exec_create(version, sleeper, _config(["sh", "-c", "echo out; echo err >&2; exit 3"]))
    raw, first = lean.exec_start(version, exec_id, tty=False)
    frames = _output(raw, first)
    assert b"out\n" in frames and b"err\n" in frames  # multiplexed: 8-byte headers before each
    state = lean.exec_inspect(version, exec_id)
    assert (state["Running"], state["ExitCode"]) == (False, 3)
    assert docker_api.exec_inspect(exec_id)["ExitCode"] == 3


def test_refusals_are_the_engines_status_and_words(lean: LeanExecClient, docker_api: docker.APIClient) -> None:
    version = docker_api.api_version
    with pytest.raises(ApiError) as missing:
        lean.exec_create(version, f"no-such-{uuid.uuid4().hex}", _config(["true"]))
    assert (missing.value.status, missing.value.code) == (404, "no_such_container")
    with pytest.raises(ApiError) as no_exec:
        lean.exec_start(version, uuid.uuid4().hex, tty=False)
    assert no_exec.value.status == 404
    with pytest.raises(ApiError) as no_inspect:
        lean.exec_inspect(version, uuid.uuid4().hex)
    assert no_inspect.value.status == 404


def test_kept_connections_the_engine_closed_are_replaced(
    lean: LeanExecClient, sleeper: str, docker_api: docker.APIClient
) -> None:
    """As an engine restart leaves them: every kept connection broken; the next call still works."""
    version = docker_api.api_version
    exec_id = lean.exec_create(version, sleeper, _config(["true"]))
    kept = [lean._take()[0] for _ in range(3)]  # three kept connections, open
    for connection in kept:
        if connection.sock is None:  # (the first is the create's, open already)
            connection.connect()
        lean._give_back(connection)
    assert lean.idle_connections() == 3
    for connection in kept:
        assert connection.sock is not None
        connection.sock.shutdown(socket.SHUT_RDWR)  # the next send on it breaks
    assert lean.exec_inspect(version, exec_id)["ExitCode"] is None  # created, never started
    assert lean.idle_connections() == 1 and lean._idle[0] not in kept


def test_connections_are_shared_by_threads_and_their_number_is_bounded(
    lean: LeanExecClient, sleeper: str, docker_api: docker.APIClient
) -> None:
    """Threads that come and go leave no connection of their own behind: what is kept is shared,
    at most IDLE_KEPT of it."""
    version = docker_api.api_version
    exec_id = lean.exec_create(version, sleeper, _config(["true"]))
    for _ in range(5):  # five threads, one after another: one connection serves them all
        with ThreadPoolExecutor(1) as pool:
            pool.submit(lean.exec_inspect, version, exec_id).result(timeout=30)
    assert lean.idle_connections() == 1
    with ThreadPoolExecutor(IDLE_KEPT + 8) as pool:
        list(pool.map(lambda _: lean.exec_inspect(version, exec_id), range(200)))
    assert 1 <= lean.idle_connections() <= IDLE_KEPT


def test_an_engine_that_is_not_there_is_unavailable() -> None:
    client = LeanExecClient("/nonexistent/docker.sock", 5.0)
    with pytest.raises(ApiError) as caught, engine_errors():
        client.exec_inspect("1.41", "x")
    assert caught.value.code == "docker_unavailable"
    client.close()


@pytest.mark.parametrize(
    ("host", "path"),
    [
        ("unix:///run/drbed/1/docker.sock", "/run/drbed/1/docker.sock"),
        ("tcp://127.0.0.1:2375", None),
        ("ssh://user@host", None),
    ],
)
def test_only_an_engine_on_a_unix_socket_has_a_lean_client(host: str, path: str | None) -> None:
    assert unix_socket_of(host) == path
