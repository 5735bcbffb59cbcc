"""Docker lifecycle events as SSE frames: one engine subscription per subscriber, split at the byte
level, resumable exactly (``event_cursor``: the engine publishes slightly out of time order)."""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
from collections.abc import AsyncGenerator
from typing import Any

from ..engine.core import Engine, open_leased_stream
from ..engine.streams import BlockingStream, chunks_or_pings
from ..errors import validation_error
from ..protocol import sse
from ..protocol.event_cursor import EventCursor, Position
from ..protocol.ndjson import LineSplitter

log = logging.getLogger("docker_runner.events")

DEFAULT_FILTERS: dict[str, Any] = {"type": ["container"]}
_TIMESTAMP = re.compile(r"^\d{1,12}(\.\d{1,9})?$")


def parse_filters(encoded: str | None) -> dict[str, Any]:
    """``filters``: base64 of a JSON object in the engine's filter form; absent means containers only."""
    if encoded is None or encoded == "":
        return {key: list(values) for key, values in DEFAULT_FILTERS.items()}
    try:
        padded = encoded + "=" * (-len(encoded) % 4)
        decoded = base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
        filters = json.loads(decoded)
    except (binascii.Error, ValueError):
        raise validation_error("filters", "must be base64 of a JSON object") from None
    if not isinstance(filters, dict) or not all(_filter_values_ok(values) for values in filters.values()):
        raise validation_error("filters", 'must map names to lists of strings, e.g. {"type":["container"]}')
    return {str(key): values for key, values in filters.items()}


def _filter_values_ok(values: Any) -> bool:
    if isinstance(values, list):
        return all(isinstance(value, str) for value in values)
    if isinstance(values, dict):  # the engine's older map form: {"label": {"a=b": true}}
        return all(isinstance(key, str) and isinstance(flag, bool) for key, flag in values.items())
    return False


def parse_timestamp(name: str, value: str | None) -> str | None:
    if value is None or value == "":
        return None
    if not _TIMESTAMP.match(value):
        raise validation_error(name, "must be a Unix timestamp in seconds, e.g. 1767225600 or 1767225600.5")
    return value


def parse_last_event_id(value: str | None) -> Position | None:
    if value is None or value == "":
        return None
    try:
        return Position.parse(value)
    except ValueError:
        raise validation_error("Last-Event-ID", "must be the id of an event this runner sent") from None


def with_scope(filters: dict[str, Any], scope_labels: list[str]) -> dict[str, Any]:
    """Add the runner's own label filter: a subscriber never sees containers outside the scope.
    Swarm's node events carry no labels (and name no container): a filter for them alone is left as is."""
    if not scope_labels or filters.get("type") == ["node"]:
        return filters
    labels = filters.get("label", [])
    if isinstance(labels, dict):
        labels = [key for key, flag in labels.items() if flag]
    return {**filters, "label": [*labels, *scope_labels]}


async def subscribe(
    engine: Engine, since: str | None, until: str | None, filters: dict[str, Any], cursor: EventCursor
) -> BlockingStream:
    """Open the engine subscription now, so that its errors are ordinary error answers. A resume
    starts where its cursor says, whatever ``since`` asked."""
    params = {"since": cursor.since() or since, "until": until, "filters": json.dumps(filters)}
    return await open_leased_stream(engine, "/events", params)


def _event_frame(line: bytes, cursor: EventCursor) -> sse.Frame | None:
    try:
        event = json.loads(line)
    except ValueError:
        log.warning("undecodable event line from the engine: %r", line[:200])
        return None
    if not isinstance(event, dict):
        return None
    if not cursor.admit(event):
        return None  # delivered before the reconnect
    return sse.frame({"type": "event", "event": event}, cursor.event_id())


async def frames(stream: BlockingStream, cursor: EventCursor, ping_seconds: float) -> AsyncGenerator[sse.Frame, None]:
    splitter = LineSplitter()
    try:
        async for chunk in chunks_or_pings(stream, ping_seconds):
            if chunk is None:
                yield sse.ping()
                continue
            for line in splitter.feed(chunk):
                message = _event_frame(line, cursor)
                if message is not None:
                    yield message
        for line in splitter.flush():
            message = _event_frame(line, cursor)
            if message is not None:
                yield message
        if stream.error is not None:
            yield sse.error_frame(f"the engine's event stream failed: {stream.error}")
    finally:
        await stream.aclose()
