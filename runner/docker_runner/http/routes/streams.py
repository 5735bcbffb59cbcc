"""Server-sent event streams (docs/protocol.md 4) and the browser tickets that open them (1.1)."""

from __future__ import annotations

import re
from typing import Annotated, Any

import msgspec
from litestar import Litestar, Request, get, post
from litestar.params import HeaderParameter, JSONBody, QueryParameter
from litestar.response import ServerSentEvent

from ...auth.tickets import DEFAULT_TTL_MS, MAX_TTL_MS, TICKET_PARAMETER
from ...cluster.events import merged_frames
from ...cluster.peers import FORWARDED_HEADER
from ...containers import events, logs
from ...containers.lifecycle import inspect
from ...containers.spec import NonEmptyStr
from ...errors import validation_error
from ...protocol.event_cursor import EventCursor
from .. import sse
from ..dependencies import RuntimeDep
from ..forwarding import LOCATED_BY
from ..middleware import TICKETS_ACCEPTED, header
from ..observe import at_request_end, note
from ..openapi import errors

OptionalQuery = Annotated[str | None, QueryParameter()]
SSE_MEDIA_TYPE = "text/event-stream"
SSE_DESCRIPTION = "an endless stream of server-sent events"


@get(
    "/v1/events/sse",
    opt={TICKETS_ACCEPTED: True},
    responses=errors(),
    media_type=SSE_MEDIA_TYPE,
    response_description=SSE_DESCRIPTION,
)
async def events_sse(
    request: Request[Any, Any, Any],
    runtime: RuntimeDep,
    since: OptionalQuery = None,
    until: OptionalQuery = None,
    filters: OptionalQuery = None,
    last_event_id: Annotated[str | None, HeaderParameter(name="Last-Event-ID")] = None,
) -> ServerSentEvent:
    if runtime.cluster is not None and not header(request.scope, FORWARDED_HEADER.encode()):
        merged = merged_frames(
            runtime.cluster.peers,
            runtime.engine,
            (await runtime.cluster.local()).node_id,
            runtime.managed.label_filters(),
            events.parse_filters(filters),
            events.parse_timestamp("since", since),
            events.parse_timestamp("until", until),
            last_event_id,
            runtime.settings.sse_ping_ms / 1000,
        )
        return sse.response(merged, runtime.metrics.sse_subscribers.labels(stream="events"))
    cursor = EventCursor(events.parse_last_event_id(last_event_id))
    wanted = events.with_scope(events.parse_filters(filters), runtime.managed.label_filters())
    stream = await events.subscribe(
        runtime.engine,
        events.parse_timestamp("since", since),
        events.parse_timestamp("until", until),
        wanted,
        cursor,
    )
    at_request_end(request.scope, stream.aclose)
    frames = events.frames(stream, cursor, runtime.settings.sse_ping_ms / 1000)
    return sse.response(frames, runtime.metrics.sse_subscribers.labels(stream="events"))


@get(
    "/v1/containers/logs/sse",
    opt={TICKETS_ACCEPTED: True, LOCATED_BY: ("query", "containerId")},
    responses=errors(),
    media_type=SSE_MEDIA_TYPE,
    response_description=SSE_DESCRIPTION,
)
async def logs_sse(
    request: Request[Any, Any, Any],
    runtime: RuntimeDep,
    container_id: Annotated[str, QueryParameter(name="containerId", min_length=1)],
    follow: OptionalQuery = None,
    since: OptionalQuery = None,
    tail: OptionalQuery = None,
    stdout: OptionalQuery = None,
    stderr: OptionalQuery = None,
    timestamps: OptionalQuery = None,
) -> ServerSentEvent:
    query = logs.LogQuery.parse(follow, since, tail, stdout, stderr, timestamps)
    note(request.scope, containerId=container_id)
    document = await inspect(runtime.engine, runtime.managed, container_id)
    tty = bool((document.get("Config") or {}).get("Tty"))
    stream = await logs.open_logs(runtime.engine, str(document["Id"]), query)
    at_request_end(request.scope, stream.aclose)
    frames = logs.frames(stream, tty, runtime.settings.sse_ping_ms / 1000)
    return sse.response(frames, runtime.metrics.sse_subscribers.labels(stream="logs"))


class TicketRequest(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    path: NonEmptyStr
    ttl_ms: Annotated[int, msgspec.Meta(ge=1, le=MAX_TTL_MS)] | None = None


class TicketAnswer(msgspec.Struct, rename="camel"):
    ticket: str
    expires_at: int


def _ticket_routes(app: Litestar) -> list[re.Pattern[str]]:
    """The paths of the routes that take a ticket instead of signed headers (streams, the WebSocket)."""
    patterns = []
    for route in app.routes:
        handlers = getattr(route, "route_handlers", None) or [getattr(route, "route_handler", None)]
        if any(handler is not None and handler.opt.get(TICKETS_ACCEPTED) for handler in handlers):
            template = re.escape(route.path_format)
            patterns.append(re.compile("^" + re.sub(r"\\\{[^}]*\\\}", "[^/]+", template) + "$"))
    return patterns


@post("/v1/tickets", status_code=200, responses=errors())
async def issue_ticket(
    data: JSONBody[TicketRequest], request: Request[Any, Any, Any], runtime: RuntimeDep
) -> TicketAnswer:
    if not data.path.startswith("/") or f"{TICKET_PARAMETER}=" in data.path:
        raise validation_error("path", "must be the exact path and query the browser will open, without a ticket")
    route_path = data.path.partition("?")[0]
    if not any(pattern.match(route_path) for pattern in _ticket_routes(request.app)):
        raise validation_error("path", "names no route that accepts a ticket (the SSE streams and the exec WebSocket)")
    ticket, expires_at = runtime.tickets.issue(data.path, data.ttl_ms or DEFAULT_TTL_MS)
    return TicketAnswer(ticket, expires_at)


ROUTES = [events_sse, logs_sse, issue_ticket]
