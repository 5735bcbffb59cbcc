"""A byte buffer that keeps only the last ``limit`` bytes of a stream (pure)."""

from __future__ import annotations


def _skip_continuation_bytes(data: bytes) -> bytes:
    """Cut the UTF-8 continuation bytes that a tail cut left at the start (at most 3)."""
    start = 0
    while start < min(3, len(data)) and 0x80 <= data[start] <= 0xBF:
        start += 1
    return data[start:]


class TailBuffer:
    """Holds at most ``2 * limit`` bytes at any time, and returns the last ``limit`` of them."""

    def __init__(self, limit: int) -> None:
        if limit < 0:
            raise ValueError("limit must be >= 0")
        self._limit = limit
        self._data = bytearray()
        self.truncated = False
        self.total = 0

    def append(self, chunk: bytes) -> None:
        self.total += len(chunk)
        if len(chunk) >= self._limit:
            self._data[:] = chunk[len(chunk) - self._limit :] if self._limit else b""
            self.truncated = self.truncated or len(chunk) > self._limit or self.total > len(chunk)
            return
        self._data += chunk
        if len(self._data) > 2 * self._limit:
            del self._data[: len(self._data) - self._limit]
            self.truncated = True

    def value(self) -> bytes:
        if len(self._data) > self._limit:
            del self._data[: len(self._data) - self._limit]
            self.truncated = True
        data = bytes(self._data)
        return _skip_continuation_bytes(data) if self.truncated else data

    def text(self) -> str:
        return self.value().decode("utf-8", "replace")
