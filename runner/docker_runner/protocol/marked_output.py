"""Output streams that end with an exit marker (pure): the pool's bootstrap prints one after a
script, the resident command channel brackets each command between a begin and an end marker.

A marker carries a per-run random token, so output that merely looks like one (or another run's
marker) is output. The end marker starts with a newline of its own, taken out with it.
"""

from __future__ import annotations

import re

from .output_buffer import TailBuffer

MARKER_RESERVE = 64  # bytes of output held back in case a marker is being cut


def end_marker(token: bytes) -> re.Pattern[bytes]:
    """The run's own end marker: a marker of another token can neither match nor hide it."""
    return re.compile(rb"\n__docker_runner_exit_" + re.escape(token) + rb":(\d+)\n")


def begin_marker(token: str) -> bytes:
    return b"\n__docker_runner_begin_" + token.encode() + b"\n"


class MarkedStream:
    """One output stream, up to its exit marker (taken out); bytes after the marker are dropped."""

    def __init__(self, token: bytes, limit: int) -> None:
        self._end = end_marker(token)
        self._held = b""  # a tail that might be the start of the marker
        self.text = TailBuffer(limit)
        self.code: int | None = None

    def feed(self, payload: bytes) -> None:
        if self.code is not None:
            return
        held = self._held + payload
        match = self._end.search(held)
        if match is not None:
            self.text.append(held[: match.start()])
            self._held = b""
            self.code = int(match.group(1))
            return
        keep = min(len(held), MARKER_RESERVE)
        self.text.append(held[: len(held) - keep])
        self._held = held[len(held) - keep :]

    def finish(self) -> None:
        self.text.append(self._held)
        self._held = b""


class BracketedStream:
    """One output stream of a channel: what comes before the run's begin marker belongs to no run
    (a former command's background process) and is dropped; then a :class:`MarkedStream`."""

    def __init__(self, token: str, limit: int) -> None:
        self._begin = begin_marker(token)
        self._before = b""
        self.begun = False
        self.marked = MarkedStream(token.encode(), limit)

    def feed(self, payload: bytes) -> None:
        if self.begun:
            self.marked.feed(payload)
            return
        seen = self._before + payload
        at = seen.find(self._begin)
        if at < 0:
            self._before = seen[-(len(self._begin) - 1) :]
            return
        self.begun = True
        self._before = b""
        self.marked.feed(seen[at + len(self._begin) :])

    @property
    def code(self) -> int | None:
        return self.marked.code

    def finish(self) -> None:
        if self.begun:
            self.marked.finish()
