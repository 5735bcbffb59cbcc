"""A job's output as events, and the bounded buffer that late subscribers read from (pure).

The attach stream is demultiplexed, then each stream is split into lines at the byte level (the
splitter of the events stream). A stdout line that parses as a JSON object becomes
``{"type": "message", "message": {...}}``; every other line, stdout or stderr, becomes
``{"type": "log", "stream", "line"}``, blank lines included (plain output keeps its shape). A line
longer than ``DOCKER_RUNNER_JOB_MAX_LINE_BYTES`` is dropped and counted. Each event is encoded
once, when it happens, and numbered: the number is its SSE ``id``.
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass
from typing import Any

from ..protocol.demux import STDERR, FrameDemuxer
from ..protocol.ndjson import LineSplitter


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def encode(payload: dict[str, Any]) -> str:
    """Compact JSON, UTF-8 where it can be; lone surrogates (which UTF-8 cannot carry) stay escaped."""
    text = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = json.dumps(payload, separators=(",", ":"))
    return text


def _json_object(line: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(line.decode("utf-8"), parse_constant=_no_constants)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return None
    return value if isinstance(value, dict) else None


def classify(stream: str, line: bytes) -> tuple[str, str]:
    """(kind, encoded event) of one output line: kind is ``message`` or ``log``."""
    if stream == "stdout":
        message = _json_object(line)
        if message is not None:
            try:
                return "message", encode({"type": "message", "message": message})
            except (ValueError, RecursionError):
                pass  # nested deeper than the encoder goes: forwarded as the text it is
    return "log", encode({"type": "log", "stream": stream, "line": line.decode("utf-8", "replace")})


class OutputLines:
    """Feed the raw attach stream in any pieces; get back ``(stream, line)`` for every whole line."""

    def __init__(self, max_line_bytes: int) -> None:
        self._demuxer = FrameDemuxer()
        self._splitters = {stream: LineSplitter(max_line_bytes, keep_blank=True) for stream in ("stdout", "stderr")}

    def feed(self, chunk: bytes) -> list[tuple[str, bytes]]:
        lines: list[tuple[str, bytes]] = []
        for stream_id, payload in self._demuxer.feed(chunk):
            stream = "stderr" if stream_id == STDERR else "stdout"
            lines.extend((stream, line) for line in self._splitters[stream].feed(payload))
        return lines

    def flush(self) -> list[tuple[str, bytes]]:
        """The last line of each stream that had no newline."""
        return [(stream, line) for stream, splitter in self._splitters.items() for line in splitter.flush()]

    @property
    def overlong(self) -> int:
        """Lines dropped for being longer than ``max_line_bytes``."""
        return sum(splitter.overlong for splitter in self._splitters.values())


@dataclass(frozen=True)
class Event:
    seq: int  # 1, 2, 3, ... in the order the events happened
    data: str  # the encoded JSON payload


class EventBuffer:
    """The last events of a job: at most ``max_events`` of them and about ``max_bytes`` (the newest
    event is always kept, whatever its size). ``dropped`` counts the events pushed out."""

    def __init__(self, max_events: int, max_bytes: int) -> None:
        self._events: deque[Event] = deque()
        self._max_events = max(1, max_events)
        self._max_bytes = max_bytes
        self._bytes = 0
        self.last_seq = 0
        self.dropped = 0

    def append(self, data: str) -> Event:
        self.last_seq += 1
        event = Event(self.last_seq, data)
        self._events.append(event)
        self._bytes += len(data)
        while len(self._events) > self._max_events or (self._bytes > self._max_bytes and len(self._events) > 1):
            self._bytes -= len(self._events.popleft().data)
            self.dropped += 1
        return event

    def after(self, seq: int) -> tuple[int, list[Event]]:
        """(how many events after ``seq`` are no longer held, the held events after ``seq``)."""
        if not self._events or seq >= self.last_seq:
            return 0, []
        oldest = self._events[0].seq
        missed = max(0, oldest - (seq + 1))
        skip = max(0, seq + 1 - oldest)
        return missed, [self._events[index] for index in range(skip, len(self._events))]
