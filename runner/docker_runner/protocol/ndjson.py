"""Newline-delimited JSON split at the byte level (pure).

Chunks arrive cut anywhere: several lines in one chunk, one line over many chunks, a multi-byte
character split between two. Splitting bytes (never decoded text) and decoding whole lines keeps
every line exactly once; :meth:`LineSplitter.flush` hands over a last line that had no newline.

A line longer than ``max_line_bytes`` (its bytes before the newline) is dropped and counted in
``overlong``, however the chunks cut it. Blank lines are dropped unless ``keep_blank`` is set: the
engine's event stream has none worth keeping, a job's plain output may.
"""

from __future__ import annotations


class LineSplitter:
    """Feed bytes in any pieces; get back every complete line (without its newline), in order."""

    def __init__(self, max_line_bytes: int = 16 * 1024 * 1024, keep_blank: bool = False) -> None:
        self._pending = bytearray()
        self._max_line_bytes = max_line_bytes
        self._keep_blank = keep_blank
        self._skipping = False  # inside a line too long to keep: drop up to its newline
        self.overlong = 0  # lines dropped for exceeding max_line_bytes

    def feed(self, chunk: bytes) -> list[bytes]:
        if self._skipping:
            newline = chunk.find(b"\n")
            if newline == -1:
                return []
            self._skipping = False
            chunk = chunk[newline + 1 :]
        if not chunk:
            return []
        start = len(self._pending)
        self._pending += chunk
        lines: list[bytes] = []
        begin = 0
        position = self._pending.find(b"\n", start)
        while position != -1:
            self._keep(lines, self._pending[begin:position])
            begin = position + 1
            position = self._pending.find(b"\n", begin)
        del self._pending[:begin]
        if len(self._pending) > self._max_line_bytes:
            self._pending.clear()  # a runaway line: drop it rather than grow without bound
            self._skipping = True
            self.overlong += 1
        return lines

    def flush(self) -> list[bytes]:
        """The trailing line without a newline, if any; the splitter is empty afterwards."""
        lines: list[bytes] = []
        if self._pending:
            self._keep(lines, self._pending)
        self._pending.clear()
        self._skipping = False
        return lines

    def _keep(self, lines: list[bytes], raw: bytearray) -> None:
        if len(raw) > self._max_line_bytes:
            self.overlong += 1
            return
        line = bytes(raw).rstrip(b"\r")
        if line or self._keep_blank:
            lines.append(line)

    @property
    def buffered(self) -> int:
        return len(self._pending)
