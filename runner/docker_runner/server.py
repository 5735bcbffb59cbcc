"""Serving the app with uvicorn, as the console script and the tests do.

- The listening socket is bound before the app starts: a second runner started by mistake on a
  port already taken stops there, before its start-up sweep could remove the first one's pooled
  and one-shot containers.
- When shutdown begins, in-flight requests get the grace period to finish; one second before it
  runs out, the runner cuts what is left itself (``Draining``), so those requests answer
  503 ``shutting_down`` instead of being cancelled by uvicorn into a bare 500.
"""

from __future__ import annotations

import asyncio
import logging
import socket

import anyio
import uvicorn

from .app import create_asgi
from .runtime import Runtime
from .settings import Settings

CUT_BEFORE_GRACE_ENDS_SECONDS = 1.0
LISTEN_BACKLOG = 2048  # uvicorn's default
ENGINE_PROBE_SECONDS = 3.0  # the start-up line does not wait longer for a hung engine

log = logging.getLogger("docker_runner")


class ListenError(OSError):
    """The configured address cannot be listened on; the message names the variables."""


def bind_listener(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
        listener.listen(LISTEN_BACKLOG)  # a bound socket that does not listen yet lets another bind the port
    except OSError as exc:
        listener.close()
        raise ListenError(
            f"cannot listen on {host}:{port} (DOCKER_RUNNER_HOST, DOCKER_RUNNER_PORT): {exc.strerror or exc}"
        ) from exc
    return listener


def uvicorn_config(settings: Settings, runtime: Runtime, **overrides: object) -> uvicorn.Config:
    options: dict[str, object] = {
        "log_level": settings.log_level,
        "lifespan": "on",
        "timeout_graceful_shutdown": settings.shutdown_grace_seconds,
        "ws_ping_interval": settings.ws_ping_interval_seconds,
        "ws_ping_timeout": settings.ws_ping_timeout_seconds,
        "ws_per_message_deflate": settings.ws_compression,
        "access_log": False,  # the runner logs each request itself, without raw paths (tickets)
        "log_config": None,  # uvicorn's own loggers go through the runner's format
    }
    options.update(overrides)
    return uvicorn.Config(create_asgi(settings, runtime), **options)  # type: ignore[arg-type]


def listen_url(listener: socket.socket) -> str:
    host, port = listener.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class RunnerServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, runtime: Runtime) -> None:
        super().__init__(config)
        self._runtime = runtime

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.should_exit or not sockets:
            return
        engine = "engine unreachable"
        with anyio.move_on_after(ENGINE_PROBE_SECONDS):
            engine = await self._runtime.engine.describe()
        # the one line a newcomer needs: where to point a client, and which engine answers
        log.info("listening on %s, %s", ", ".join(listen_url(listener) for listener in sockets), engine)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        grace = self.config.timeout_graceful_shutdown or 0
        cut_in = max(0.0, grace - CUT_BEFORE_GRACE_ENDS_SECONDS)
        cut = asyncio.get_running_loop().call_later(cut_in, self._runtime.draining.cut)
        try:
            await super().shutdown(sockets)
        finally:
            cut.cancel()
