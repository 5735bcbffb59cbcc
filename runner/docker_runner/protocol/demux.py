"""Docker's multiplexed stream format, parsed incrementally (pure).

Without a tty the engine frames exec, attach and log output: an 8-byte header (byte 0 the
stream, 1 stdin / 1 stdout / 2 stderr; bytes 4-7 the big-endian payload length) then the
payload. Frames arrive cut anywhere; the parser keeps what it has not yet seen whole.
"""

from __future__ import annotations

import struct

STDOUT = 1
STDERR = 2
HEADER_BYTES = 8
STREAM_NAMES = {0: "stdout", 1: "stdout", 2: "stderr"}


class FrameDemuxer:
    """Feed raw bytes in any pieces; get back ``(stream, payload)`` for every whole frame."""

    def __init__(self) -> None:
        self._pending = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        self._pending += data
        frames: list[tuple[int, bytes]] = []
        offset = 0
        pending = self._pending
        while len(pending) - offset >= HEADER_BYTES:
            stream = pending[offset]
            (length,) = struct.unpack_from(">I", pending, offset + 4)
            end = offset + HEADER_BYTES + length
            if len(pending) < end:
                break
            frames.append((STDERR if stream == STDERR else STDOUT, bytes(pending[offset + HEADER_BYTES : end])))
            offset = end
        del pending[:offset]
        return frames

    @property
    def buffered(self) -> int:
        """Bytes of an incomplete frame held back; bounded by one frame."""
        return len(self._pending)


def frame(stream: int, payload: bytes) -> bytes:
    """Encode one frame (for tests and for relaying)."""
    return bytes([stream, 0, 0, 0]) + struct.pack(">I", len(payload)) + payload
