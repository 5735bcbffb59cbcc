"""The outermost ASGI layer: for every HTTP request and WebSocket upgrade, whatever answered it
(unknown routes and refused signatures included), the request metrics and one structured log line:
request id, method, route template, status, container id and image where known, elapsed ms.

Only route templates are logged, never raw paths or queries: a ticket in a query string never
reaches the log."""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, cast

import anyio
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from ..metrics import UNMATCHED_ROUTE, Metrics

log = logging.getLogger("docker_runner.requests")

FIELDS_STATE = "docker_runner.log_fields"
CLEANUPS_STATE = "docker_runner.cleanups"
REQUEST_ID_HEADER = b"x-request-id"
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_METHODS = {"GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"}


def at_request_end(scope: Scope, cleanup: Callable[[], Awaitable[None]]) -> None:
    """Run ``cleanup`` once the request is over, however it ended. A streamed response whose body
    never started (the client left first) never runs its generator's ``finally``: what its handler
    opened (an engine stream, a stream slot) is released here instead. Cleanups must be idempotent."""
    scope.setdefault("state", {}).setdefault(CLEANUPS_STATE, []).append(cleanup)


def note(scope: Scope, **fields: str | None) -> None:
    """Let the request's log line carry what a handler learnt (container id, image)."""
    noted: dict[str, str] = scope.setdefault("state", {}).setdefault(FIELDS_STATE, {})
    noted.update({key: value for key, value in fields.items() if value})


async def _clean_up(scope: Scope) -> None:
    for cleanup in (scope.get("state") or {}).get(CLEANUPS_STATE) or []:
        with anyio.CancelScope(shield=True):
            try:
                await cleanup()
            except Exception:
                log.warning("a request's clean-up failed", exc_info=True)


def _request_id(scope: Scope) -> str:
    for key, value in scope.get("headers", []):
        if key.lower() == REQUEST_ID_HEADER:
            text = value.decode("latin-1")
            if _SAFE_REQUEST_ID.match(text):
                return text
    return uuid.uuid4().hex


def _status_of(message: Message) -> int | None:
    kind = message["type"]
    if kind in ("http.response.start", "websocket.http.response.start"):
        status: int = cast(dict[str, Any], message)["status"]
        return status
    if kind == "websocket.accept":
        return 101
    if kind == "websocket.close":
        return 403  # closed before accept: refused
    return None


class RequestObserver:
    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self._metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        request_id = _request_id(scope)
        started = time.perf_counter()
        answered: list[int] = []

        async def observed_send(message: Message) -> None:
            status = _status_of(message)
            if status is not None and not answered:
                answered.append(status)
                self._record_latency(scope, time.perf_counter() - started)
                if message["type"] == "http.response.start":
                    message = {
                        **message,
                        "headers": [*message.get("headers", []), (REQUEST_ID_HEADER, request_id.encode())],
                    }
            await send(message)

        try:
            await self.app(scope, receive, observed_send)
        finally:
            await _clean_up(scope)
            status = answered[0] if answered else 499  # the client left before any answer
            self._finish(scope, request_id, status, time.perf_counter() - started)

    def _labels(self, scope: Scope) -> tuple[str, str]:
        route = str(scope.get("path_template") or UNMATCHED_ROUTE)
        method = str(scope.get("method") or "GET").upper()
        return route, method if method in _METHODS else "OTHER"

    def _record_latency(self, scope: Scope, seconds: float) -> None:
        route, method = self._labels(scope)
        self._metrics.request_seconds.labels(route=route, method=method).observe(seconds)

    def _finish(self, scope: Scope, request_id: str, status: int, seconds: float) -> None:
        route, method = self._labels(scope)
        self._metrics.requests.labels(route=route, method=method, status=str(status)).inc()
        fields: dict[str, Any] = {"requestId": request_id, "method": method, "route": route, "status": status}
        fields.update((scope.get("state") or {}).get(FIELDS_STATE) or {})
        fields["elapsedMs"] = round(seconds * 1000, 1)
        log.info("request", extra={"fields": fields})
