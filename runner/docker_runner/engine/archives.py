"""Tar archives into and out of containers, streamed in both directions."""

from __future__ import annotations

from collections.abc import AsyncIterator
from types import TracebackType
from typing import IO

import requests

from .core import Engine, open_archive_response
from .threads import in_thread

STAT_HEADER = "x-docker-container-path-stat"
CHUNK_BYTES = 256 * 1024


async def put(engine: Engine, container_id: str, path: str, tar: bytes | IO[bytes]) -> None:
    """Extract a tar at ``path``; a file is streamed to the engine, never read whole."""
    await engine.run_stream(lambda api: api.put_archive(container_id, path, tar))


class ArchiveDownload:
    """A tar being read from a container: iterate for chunks; closing releases the engine stream."""

    def __init__(self, engine: Engine, response: requests.Response) -> None:
        self._engine = engine
        self._response = response
        self.stat_header = response.headers.get(STAT_HEADER)

    def _read(self) -> bytes:
        chunk: bytes = self._response.raw.read(CHUNK_BYTES)
        return chunk

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while chunk := await in_thread(self._read, limiter=self._engine.stream_limiter):
            yield chunk

    async def __aenter__(self) -> ArchiveDownload:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        self._response.close()


async def open_archive(engine: Engine, container_id: str, path: str) -> ArchiveDownload:
    response = await engine.run_stream(lambda api: open_archive_response(api, container_id, path))
    return ArchiveDownload(engine, response)
