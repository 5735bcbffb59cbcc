"""``GET /v1/exec/interactive/ws`` (docs/protocol.md 5): a shell or command over a WebSocket."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any
from urllib.parse import urlsplit

import anyio
from litestar import Request, WebSocket, get, websocket
from litestar.datastructures import Headers
from litestar.exceptions import WebSocketDisconnect
from litestar.openapi import ResponseSpec
from litestar.types import Scope

from ...auth.tickets import split_ticket
from ...engine.core import StreamLease
from ...errors import ApiError, Kind
from ...exec.interactive import ExecQuery, InteractiveExec
from ...protocol.demux import STDERR, FrameDemuxer
from ...protocol.output_buffer import TailBuffer
from ...runtime import Runtime
from ...settings import Settings
from ..dependencies import RuntimeDep
from ..forwarding import LOCATED_BY
from ..middleware import OPEN_ROUTE, TICKETS_ACCEPTED, UPGRADE_PRECHECK, refuse_upgrade, request_target
from ..observe import note
from ..openapi import ErrorEnvelope

PATH = "/v1/exec/interactive/ws"
EXIT_TAIL_BYTES = 256 * 1024
CLOSE_NORMAL, CLOSE_INTERNAL_ERROR, CLOSE_INVALID_QUERY = 1000, 1011, 4000


def _error_frame(error: ApiError) -> dict[str, Any]:
    # "error" carries the message, as existing clients read it; status is ours, for typed clients
    return {
        "type": "error",
        "error": error.message,
        "code": error.code,
        "retryable": error.retryable,
        "status": error.status,
    }


def origin_allowed(settings: Settings, origin: str, host: str | None) -> bool:
    """A browser Origin listed in DOCKER_RUNNER_ALLOWED_ORIGINS; with the UI on, also the runner's
    own pages (the Origin names the host the browser is talking to: /ui/terminal)."""
    origin = origin.rstrip("/")
    if origin in settings.allowed_origins:
        return True
    return settings.ui and host is not None and urlsplit(origin).netloc.lower() == host.lower()


def _origin_refused(origin: str) -> ApiError:
    return ApiError(Kind.FORBIDDEN, "origin_not_allowed", f"Origin {origin} may not open an exec session")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


class _ClientGone(Exception):
    pass


class Relay:
    """Both directions of one session, until the process ends or the client goes away."""

    def __init__(self, socket: WebSocket[Any, Any, Any], session: InteractiveExec) -> None:
        self._socket = socket
        self._session = session
        self._demuxer = None if session.query.tty else FrameDemuxer()
        self._tails = {"stdout": TailBuffer(EXIT_TAIL_BYTES), "stderr": TailBuffer(EXIT_TAIL_BYTES)}
        self.client_gone = False

    async def _send(self, frame: dict[str, Any]) -> None:
        try:
            await self._socket.send_text(json.dumps(frame, separators=(",", ":")))
        except (WebSocketDisconnect, RuntimeError, OSError) as exc:
            raise _ClientGone from exc

    async def _output(self, stream: str, data: bytes) -> None:
        self._tails[stream].append(data)
        # the hot path of a flood: the frame is spelled out, not json.dumps'd (base64 needs no escaping)
        frame = f'{{"type":"{stream}","data":"{_b64(data)}"}}'
        try:
            await self._socket.send_text(frame)
        except (WebSocketDisconnect, RuntimeError, OSError) as exc:
            raise _ClientGone from exc

    async def pump_output(self) -> None:
        while (chunk := await self._session.output.receive()) is not None:
            if self._demuxer is None:
                await self._output("stdout", chunk)
                continue
            for stream_id, payload in self._demuxer.feed(chunk):
                demuxed = stream_id == STDERR and self._session.query.demux
                if payload:
                    await self._output("stderr" if demuxed else "stdout", payload)

    async def pump_input(self) -> None:
        while True:
            message = await self._socket.receive()
            if message["type"] == "websocket.disconnect":
                raise _ClientGone
            text = message.get("text")
            if not isinstance(text, str):
                await self._send(_error_frame(ApiError(Kind.INVALID, "invalid_frame", "frames must be JSON text")))
                continue
            await self._handle(text)

    async def _handle(self, text: str) -> None:
        try:
            frame = json.loads(text)
            kind = frame.get("type") if isinstance(frame, dict) else None
            if kind == "stdin":
                await self._session.write(base64.b64decode(str(frame.get("data", "")), validate=True))
            elif kind == "close":
                await self._session.close_stdin()
            elif kind == "resize":
                await self._session.resize(int(frame["cols"]), int(frame["rows"]))
            else:
                raise ValueError(f"unknown frame type {kind!r}")
        except (ValueError, KeyError, TypeError, binascii.Error) as exc:
            await self._send(_error_frame(ApiError(Kind.INVALID, "invalid_frame", f"invalid frame: {exc}")))
        except ApiError as error:
            await self._send(_error_frame(error))
        except OSError:
            pass  # stdin is closed, or the process ended: its output tells the rest

    async def run(self) -> None:
        try:
            await self._send({"type": "ready", "execId": self._session.exec_id})
            async with anyio.create_task_group() as group:
                group.start_soon(self._watch_input, group.cancel_scope)
                try:
                    await self.pump_output()
                except _ClientGone:
                    self.client_gone = True
                group.cancel_scope.cancel()
            if not self.client_gone:
                await self._finish()
        except _ClientGone:
            self.client_gone = True
        finally:
            # The output is closed before the kill: the engine stalls every exec of a container
            # while one exec's output is not drained, the kill's own exec included.
            await self._session.aclose()
            if self.client_gone:
                await self._session.kill()

    async def _watch_input(self, scope: anyio.CancelScope) -> None:
        try:
            await self.pump_input()
        except _ClientGone:
            self.client_gone = True
            scope.cancel()

    async def _finish(self) -> None:
        await self._session.aclose()  # the engine stalls a container's execs while one's output is not drained
        try:
            exit_code = await self._session.end()
        except ApiError as error:
            await self._send(_error_frame(error))
            await self._socket.close(CLOSE_INTERNAL_ERROR, error.code)
            return
        await self._send(
            {
                "type": "exit",
                "execId": self._session.exec_id,
                "exitCode": exit_code,
                "stdout": _b64(self._tails["stdout"].value()),
                "stderr": _b64(self._tails["stderr"].value()),
            }
        )
        await self._socket.close(CLOSE_NORMAL)


def foreign_origin(scope: Scope) -> ApiError | None:
    """The refusal of an upgrade from a browser Origin that may not open a session, else None.
    Pure over the scope, so that the auth middleware can ask it before it redeems a ticket."""
    headers = Headers.from_scope(scope)
    origin = headers.get("origin")
    settings: Settings = scope["app"].state.runtime.settings
    if origin is None or origin_allowed(settings, origin, headers.get("host")):
        return None
    return _origin_refused(origin)


@websocket(PATH, opt={TICKETS_ACCEPTED: True, UPGRADE_PRECHECK: foreign_origin, LOCATED_BY: ("query", "containerId")})
async def interactive_exec(socket: WebSocket[Any, Any, Any], runtime: RuntimeDep) -> None:
    # a foreign Origin was refused already, by the auth middleware (UPGRADE_PRECHECK)
    try:
        lease = runtime.engine.lease_stream()
    except ApiError as error:
        await refuse_upgrade(socket.scope, socket.send, error)
        return
    try:
        await _serve(socket, runtime, lease)
    finally:
        lease.release()


async def _serve(socket: WebSocket[Any, Any, Any], runtime: Runtime, lease: StreamLease) -> None:
    await socket.accept()
    try:
        query = ExecQuery.parse(dict(socket.query_params))
    except ApiError as error:
        await socket.send_text(json.dumps(_error_frame(error)))
        await socket.close(CLOSE_INVALID_QUERY, "invalid_query")
        return
    note(socket.scope, containerId=query.container_id)
    try:
        await runtime.managed.container(query.container_id)
        session = await InteractiveExec.start(runtime.engine, query, lease)
    except ApiError as error:
        await socket.send_text(json.dumps(_error_frame(error)))
        await socket.close(CLOSE_INTERNAL_ERROR, error.code)
        return
    relay = Relay(socket, session)
    runtime.metrics.ws_sessions.inc()
    try:
        await relay.run()
    finally:
        runtime.metrics.ws_sessions.dec()
        if relay.client_gone:
            runtime.metrics.exec_kills.labels(reason="disconnect").inc()


_DIAGNOSES = {
    401: "invalid_ticket: the upgrade of this URL would be refused (the message says why: already used, expired, ...)",
    403: "origin_not_allowed: the upgrade from this Origin would be refused",
    426: "upgrade_required: the upgrade of this URL would be accepted",
}
# Any page may read why it was refused: the answer tells only what the ticket's holder can learn by using it.
_READABLE_ANYWHERE = {"access-control-allow-origin": "*"}


@get(
    PATH,
    opt={OPEN_ROUTE: True},
    responses={
        status: ResponseSpec(data_container=ErrorEnvelope, description=meaning, generate_examples=False)
        for status, meaning in _DIAGNOSES.items()
    },
    security=[],
)
async def interactive_exec_without_upgrade(request: Request[Any, Any, Any], runtime: RuntimeDep) -> None:
    """426: this route speaks WebSocket. [ext] Browsers do not show why an upgrade was refused, so
    the same URL as a plain GET tells, without using its ticket: 403 ``origin_not_allowed`` or 401
    ``invalid_ticket`` (already used, expired, ...) where the upgrade would be refused, else 426."""
    refusal = foreign_origin(request.scope)
    if refusal is not None:
        refusal.headers.update(_READABLE_ANYWHERE)
        raise refusal
    target = request_target(request.scope)
    if split_ticket(target) is not None:
        try:
            await runtime.tickets.check(target)
        except ApiError as error:
            error.headers.update(_READABLE_ANYWHERE)
            raise
    raise ApiError(
        Kind.UPGRADE_REQUIRED,
        "upgrade_required",
        "This route speaks WebSocket: send an upgrade request",
        headers=_READABLE_ANYWHERE,
    )


ROUTES = [interactive_exec, interactive_exec_without_upgrade]
