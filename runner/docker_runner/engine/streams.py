"""A blocking byte stream (an engine response) read on a thread of the stream budget and handed to
the event loop through a small buffer: a slow consumer slows the reader, and the engine behind it,
instead of growing memory. Closing it from the loop ends the read and frees the thread at once.

A read that fails (the engine broke the stream off) ends the stream with :attr:`BlockingStream.error`
set; one that ends, or that the consumer closed, leaves it None."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from types import TracebackType

import anyio
import anyio.from_thread
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from .threads import in_thread

CLOSE_WAIT_SECONDS = 5


class BlockingStream:
    def __init__(
        self,
        chunks: Iterator[bytes],
        close: Callable[[], None],
        limiter: anyio.CapacityLimiter,
        buffer_chunks: int = 8,
        *,
        on_closed: Callable[[], None] | None = None,
    ) -> None:
        self._send: MemoryObjectSendStream[bytes]
        self._receive: MemoryObjectReceiveStream[bytes]
        self._send, self._receive = anyio.create_memory_object_stream[bytes](buffer_chunks)
        self._close = close
        self._on_closed = on_closed
        self.error: BaseException | None = None
        self._reader = asyncio.ensure_future(self._read(chunks, limiter))

    async def _read(self, chunks: Iterator[bytes], limiter: anyio.CapacityLimiter) -> None:
        try:
            await in_thread(self._pump, chunks, limiter=limiter, abandon_on_cancel=True)
        except Exception as exc:
            self.error = exc
        finally:
            self._send.close()

    def _pump(self, chunks: Iterator[bytes]) -> None:
        for chunk in chunks:
            try:
                anyio.from_thread.run(self._send.send, chunk)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError, RuntimeError):
                return  # the consumer left

    async def receive(self) -> bytes | None:
        """The next chunk, or None at the end of the stream."""
        try:
            return await self._receive.receive()
        except anyio.EndOfStream:
            return None

    async def aclose(self) -> None:
        self._receive.close()  # wakes a reader blocked on a full buffer
        self._close()  # interrupts a reader blocked on the engine
        try:
            with anyio.move_on_after(CLOSE_WAIT_SECONDS), contextlib.suppress(Exception):
                await asyncio.shield(self._reader)
        finally:
            on_closed, self._on_closed = self._on_closed, None
            if on_closed is not None:
                on_closed()

    async def __aenter__(self) -> BlockingStream:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


async def chunks_or_pings(stream: BlockingStream, ping_seconds: float) -> AsyncIterator[bytes | None]:
    """The stream's chunks, with None whenever ``ping_seconds`` pass without one; ends with the stream."""
    while True:
        chunk: bytes | None = b""
        with anyio.move_on_after(ping_seconds):
            chunk = await stream.receive()
        if chunk is None:
            return
        yield chunk or None
