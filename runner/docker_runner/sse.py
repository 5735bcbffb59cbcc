"""Server-sent events framing (PROTOCOL 4): ``data: <JSON>`` frames separated by ``\\n`` only,
``id:`` lines for resuming, and a ``: ping`` comment whenever a stream has been quiet for a while."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import anyio
from litestar.response import ServerSentEvent
from litestar.response.sse import ServerSentEventMessage
from prometheus_client import Gauge

from .blocking_stream import BlockingStream

SEPARATOR = "\n"  # existing clients split frames on "\n\n": Litestar's default "\r\n" would break them
HEADERS = {"Cache-Control": "no-cache, no-transform", "X-Accel-Buffering": "no"}


def frame(payload: dict[str, Any], event_id: str | None = None) -> ServerSentEventMessage:
    data = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
    return ServerSentEventMessage(data=data, id=event_id, sep=SEPARATOR)


def ping() -> ServerSentEventMessage:
    # data=None: with the default "" a browser's EventSource would fire an empty message
    return ServerSentEventMessage(comment="ping", data=None, sep=SEPARATOR)


def error_frame(message: str) -> ServerSentEventMessage:
    return frame({"type": "error", "message": message})


async def chunks_or_pings(stream: BlockingStream, ping_seconds: float) -> AsyncIterator[bytes | None]:
    """The stream's chunks, with None whenever ``ping_seconds`` pass without one; ends with the stream."""
    while True:
        chunk: bytes | None = b""
        with anyio.move_on_after(ping_seconds):
            chunk = await stream.receive()
        if chunk is None:
            return
        yield chunk or None


async def counted(
    frames: AsyncGenerator[ServerSentEventMessage, None], gauge: Gauge
) -> AsyncIterator[ServerSentEventMessage]:
    """The frames, with ``gauge`` counting the stream as open while it is."""
    gauge.inc()
    try:
        async for message in frames:
            yield message
    finally:
        gauge.dec()
        await frames.aclose()  # now, not whenever the generator is collected: it holds an engine stream


def response(frames: AsyncIterator[ServerSentEventMessage]) -> ServerSentEvent:
    return ServerSentEvent(frames, headers=dict(HEADERS))
