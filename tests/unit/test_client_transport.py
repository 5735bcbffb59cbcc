"""Transport failures become RunnerTransportError with runner_* codes (real sockets, no runner)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from docker_runner_client import (
    AsyncHttpDockerRunnerClient,
    HttpDockerRunnerClient,
    RunnerTimeout,
    RunnerTransportError,
)

SECRET = "s" * 32


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def silent_server() -> Iterator[int]:
    """Accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    server.close()


def test_unreachable_runner() -> None:
    """Connection refused: status 0, runner_unreachable, retryable (and retried, then raised)."""
    client = HttpDockerRunnerClient(f"http://127.0.0.1:{_closed_port()}", SECRET, retry_backoff_ms=1)
    with client, pytest.raises(RunnerTransportError) as caught:
        client.health()
    assert (caught.value.status_code, caught.value.code, caught.value.retryable) == (0, "runner_unreachable", True)
    assert isinstance(caught.value.__cause__, Exception)


def test_silent_runner_times_out(silent_server: int) -> None:
    client = HttpDockerRunnerClient(f"http://127.0.0.1:{silent_server}", SECRET, timeout_ms=300)
    with client, pytest.raises(RunnerTimeout) as caught:
        client.inspect_container("x")
    assert (caught.value.status_code, caught.value.code) == (0, "runner_timeout")


async def _async_health(port: int) -> None:
    async with AsyncHttpDockerRunnerClient(f"http://127.0.0.1:{port}", SECRET, max_retries=0) as client:
        await client.health()


def test_async_client_maps_the_same_way() -> None:
    import anyio

    with pytest.raises(RunnerTransportError) as caught:
        anyio.run(_async_health, _closed_port())
    assert caught.value.code == "runner_unreachable"
