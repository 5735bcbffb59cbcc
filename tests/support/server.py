"""A real uvicorn serving a real runner app on a free port, in a background thread."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from docker_runner.runtime import Runtime
from docker_runner.server import RunnerServer, bind_listener, uvicorn_config
from docker_runner.settings import Settings

TEST_SECRET = "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz"


def make_settings(**overrides: object) -> Settings:
    values: dict[str, object] = {
        "shared_secret": TEST_SECRET,
        "reaper_interval_ms": 200,
        "shutdown_grace_seconds": 2,
        "instance": "test-" + uuid.uuid4().hex[:8],  # runners of one test run must not reap each other's
        "ws_ping_interval_seconds": 1,  # a dead WebSocket peer is noticed within 3 s
        "ws_ping_timeout_seconds": 2,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


class _ObservedServer(RunnerServer):
    """The runner's server as the console script runs it, with its event loop at hand (to hang it)."""

    loop: asyncio.AbstractEventLoop | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        self.loop = asyncio.get_running_loop()
        await super().startup(sockets)


class RunningServer:
    def __init__(self, settings: Settings, runtime: Runtime, listener: socket.socket | None = None) -> None:
        self.settings = settings
        self.runtime = runtime
        # as the console script serves it (docker_runner.server), on a free port (or the one given)
        self._server = _ObservedServer(uvicorn_config(settings, runtime, log_level="warning", log_config=None), runtime)
        self._socket = listener or bind_listener("127.0.0.1", 0)
        self.port = self._socket.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True)

    def start(self) -> None:
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the runner did not start")
            time.sleep(0.01)

    def hang(self, seconds: float) -> None:
        """Block the runner's event loop for ``seconds``: a runner that accepts connections and answers nothing."""
        assert self._server.loop is not None
        self._server.loop.call_soon_threadsafe(time.sleep, seconds)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=30)
        self._socket.close()


@contextmanager
def running_runner(settings: Settings | None = None, listener: socket.socket | None = None) -> Iterator[RunningServer]:
    settings = settings or make_settings()
    server = RunningServer(settings, Runtime.create(settings), listener)
    server.start()
    try:
        yield server
    finally:
        server.stop()
