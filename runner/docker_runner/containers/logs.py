"""Container logs as SSE frames: demultiplexed chunks with their stream name, then ``end``."""

from __future__ import annotations

import base64
import re
from collections.abc import AsyncGenerator
from dataclasses import dataclass

from ..engine.core import Engine, container_path, open_leased_stream
from ..engine.streams import BlockingStream, chunks_or_pings
from ..errors import validation_error
from ..protocol import sse
from ..protocol.demux import STDERR, FrameDemuxer
from ..units import parse_flag

_TIMESTAMP = re.compile(r"^\d{1,12}(\.\d{1,9})?$")


def parse_bool(name: str, value: str | None, default: bool) -> bool:
    try:
        return parse_flag(value, default)
    except ValueError as exc:
        raise validation_error(name, str(exc)) from None


@dataclass(frozen=True)
class LogQuery:
    follow: bool = True
    since: str | None = None
    tail: str = "all"
    stdout: bool = True
    stderr: bool = True
    timestamps: bool = False

    @classmethod
    def parse(
        cls,
        follow: str | None,
        since: str | None,
        tail: str | None,
        stdout: str | None,
        stderr: str | None,
        timestamps: str | None,
    ) -> LogQuery:
        if since and not _TIMESTAMP.match(since):
            raise validation_error("since", "must be a Unix timestamp in seconds")
        if tail and tail != "all" and not tail.isdigit():
            raise validation_error("tail", "must be a number of lines or all")
        return cls(
            follow=parse_bool("follow", follow, True),
            since=since or None,
            tail=tail or "all",
            stdout=parse_bool("stdout", stdout, True),
            stderr=parse_bool("stderr", stderr, True),
            timestamps=parse_bool("timestamps", timestamps, False),
        )

    def params(self) -> dict[str, object]:
        params: dict[str, object] = {
            "follow": int(self.follow),
            "stdout": int(self.stdout),
            "stderr": int(self.stderr),
            "timestamps": int(self.timestamps),
            "tail": self.tail,
        }
        if self.since is not None:
            params["since"] = self.since
        return params


async def open_logs(engine: Engine, container_id: str, query: LogQuery) -> BlockingStream:
    """Open the engine's log stream now, so that its errors are ordinary error answers."""
    return await open_leased_stream(engine, container_path(container_id, "logs"), query.params())


def _chunk(stream_name: str, data: bytes) -> sse.Frame:
    return sse.frame({"type": "chunk", "data": base64.b64encode(data).decode("ascii"), "stream": stream_name})


async def frames(stream: BlockingStream, tty: bool, ping_seconds: float) -> AsyncGenerator[sse.Frame, None]:
    """Chunks as they come (a tty's output is all stdout), then ``end`` when the read is complete."""
    demuxer = None if tty else FrameDemuxer()
    try:
        async for chunk in chunks_or_pings(stream, ping_seconds):
            if chunk is None:
                yield sse.ping()
            elif demuxer is None:
                yield _chunk("stdout", chunk)
            else:
                for stream_id, payload in demuxer.feed(chunk):
                    if payload:
                        yield _chunk("stderr" if stream_id == STDERR else "stdout", payload)
        if stream.error is not None:
            yield sse.error_frame(f"the engine's log stream failed: {stream.error}")
        else:
            yield sse.frame({"type": "end"})
    finally:
        await stream.aclose()
