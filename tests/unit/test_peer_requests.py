"""Requests between runners: a runner that does not answer is a typed, retryable 503 naming it."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Iterator
from contextlib import suppress

import pytest

from docker_runner.cluster.cluster import Cluster
from docker_runner.cluster.peers import Peer, Peers
from docker_runner.errors import ApiError, Kind
from docker_runner.settings import Settings

PLACED = b'{"containerId":"c1","nodeId":"n2","serviceId":"s1"}'


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A listener that accepts connections and never answers (a hung runner)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield int(listener.getsockname()[1])
    stop.set()
    thread.join()
    for connection in held:
        connection.close()
    listener.close()


async def _refusal(url: str, post: bool) -> ApiError:
    peers = Peers(url, 7071, "s" * 32, timeout_seconds=0.3)
    try:
        with pytest.raises(ApiError) as raised:
            if post:
                await peers.post_json(url, "/v1/cluster/place", {"image": "x"})
            else:
                await peers.get_json(url, "/v1/cluster/locate?containerId=x")
        return raised.value
    finally:
        await peers.aclose()


@pytest.mark.parametrize("post", [False, True], ids=["get", "post"])
def test_a_refused_connection_is_node_unavailable(post: bool) -> None:
    error = asyncio.run(_refusal(f"http://127.0.0.1:{_closed_port()}", post))
    assert (error.kind, error.code, error.status, error.retryable) == (Kind.UNAVAILABLE, "node_unavailable", 503, True)


@pytest.mark.parametrize("post", [False, True], ids=["get", "post"])
def test_a_runner_that_never_answers_is_node_unavailable(silent_port: int, post: bool) -> None:
    error = asyncio.run(_refusal(f"http://127.0.0.1:{silent_port}", post))
    assert (error.code, error.status, error.retryable) == ("node_unavailable", 503, True)
    assert "Timeout" in error.message


@pytest.fixture
def slow_port() -> Iterator[int]:
    """A runner that answers every request with a placement after 0.6 s (one taking its time)."""
    import http.server

    class Slow(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length") or 0))
            threading.Event().wait(0.6)
            with suppress(OSError):  # the caller may have given up (the bounded request)
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(PLACED)))
                self.end_headers()
                self.wfile.write(PLACED)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()
    thread.join()


def test_long_work_on_a_peer_gets_its_own_bound(slow_port: int) -> None:
    """A placement through a manager's runner takes longer than a look: the caller's bound is the
    one that counts, not the peer timeout."""
    url = f"http://127.0.0.1:{slow_port}"

    async def scenario() -> None:
        peers = Peers(url, 7071, "s" * 32, timeout_seconds=0.3)
        try:
            assert await peers.post_json(url, "/v1/cluster/place", {"image": "x"}, seconds=5.0) == json.loads(PLACED)
            with pytest.raises(ApiError) as raised:
                await peers.post_json(url, "/v1/cluster/place", {"image": "x"})
            assert raised.value.code == "node_unavailable"
        finally:
            await peers.aclose()

    asyncio.run(scenario())


def test_a_run_placed_through_a_manager_waits_for_the_placement_not_for_the_run(
    slow_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker's run without a timeout of its own (0) is placed through a manager's runner: that
    request waits as long as a placement may, not the run's 0 plus a look."""
    url = f"http://127.0.0.1:{slow_port}"
    settings = Settings(shared_secret="s" * 32, instance="unit", peer_timeout_ms=300, cluster="swarm")

    class _Engine:
        stream_limiter = None

    async def scenario() -> tuple[str, str, str]:
        cluster = Cluster(_Engine(), settings)  # type: ignore[arg-type]

        async def a_manager() -> Peer:
            return Peer(url, "n1", "manager-host", "manager")

        monkeypatch.setattr(cluster, "a_manager", a_manager)
        try:
            return await cluster.place_through_a_manager("x", timeout_ms=0)
        finally:
            await cluster.peers.aclose()

    assert asyncio.run(scenario()) == ("c1", "n2", "s1")
