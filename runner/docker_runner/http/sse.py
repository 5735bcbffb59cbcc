"""SSE responses: our frames written by Litestar's own ServerSentEvent, ``\\n`` separators only
(existing clients split frames on "\\n\\n": Litestar's default "\\r\\n" would break them), counted
as open streams while they are."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator

from litestar.response import ServerSentEvent
from litestar.response.sse import ServerSentEventMessage
from prometheus_client import Gauge

from ..protocol.sse import Frame

SEPARATOR = "\n"
HEADERS = {"Cache-Control": "no-cache, no-transform", "X-Accel-Buffering": "no"}


def _message(frame: Frame) -> ServerSentEventMessage:
    # data=None on a comment: with the default "" a browser's EventSource would fire an empty message
    return ServerSentEventMessage(data=frame.data, id=frame.id, comment=frame.comment, sep=SEPARATOR)


async def _counted(frames: AsyncGenerator[Frame, None], gauge: Gauge) -> AsyncIterator[ServerSentEventMessage]:
    gauge.inc()
    try:
        async for frame in frames:
            yield _message(frame)
    finally:
        gauge.dec()
        await frames.aclose()  # now, not whenever the generator is collected: it holds an engine stream


def response(frames: AsyncGenerator[Frame, None], open_streams: Gauge) -> ServerSentEvent:
    """The frames as an SSE response; ``open_streams`` counts it while it is open."""
    return ServerSentEvent(_counted(frames, open_streams), headers=dict(HEADERS))
