"""The engine's hijacked sockets as the runner holds them (blocking): the raw socket under
docker-py's wrapper, the bytes its HTTP layer read ahead, a container's attach stream opened in
advance, and the pipe that wakes a blocked relay from another thread."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from typing import Any

from .core import APIClient

READ_BYTES = 64 * 1024


class Canceller:
    """Wakes a blocked relay from another thread; the relay polls ``fileno()``.

    ``cancel`` after ``close`` does nothing: the descriptor number may already belong to
    another file by then."""

    def __init__(self) -> None:
        self._read_fd, self._write_fd = os.pipe()
        os.set_blocking(self._write_fd, False)
        self._lock = threading.Lock()
        self._closed = False
        self._claimed = False
        self.cancelled = False

    def claim(self) -> bool:
        """The work that uses it begins (and closes it when it ends); False when it is closed already."""
        with self._lock:
            self._claimed = not self._closed
            return self._claimed

    def close_unclaimed(self) -> None:
        """Close it unless a work has claimed it (that work closes it): no pipe outlives a refused run."""
        self._close(unless_claimed=True)

    def fileno(self) -> int:
        return self._read_fd

    def cancel(self) -> None:
        with self._lock:
            if self.cancelled or self._closed:
                return
            self.cancelled = True
            os.write(self._write_fd, b"x")

    def close(self) -> None:
        self._close(unless_claimed=False)

    def _close(self, unless_claimed: bool) -> None:
        with self._lock:
            if self._closed or (unless_claimed and self._claimed):
                return
            self._closed = True
            os.close(self._read_fd)
            os.close(self._write_fd)


def raw_socket(stream: Any) -> socket.socket:
    return stream._sock if hasattr(stream, "_sock") else stream  # type: ignore[no-any-return]


def take_buffered(stream: Any, raw: socket.socket) -> bytes:
    """Bytes the HTTP layer already read past the upgrade's headers, which the raw socket will not see again."""
    try:
        reader = stream._response.raw._fp.fp
    except AttributeError:
        return b""
    raw.setblocking(False)
    try:
        return reader.read1(READ_BYTES) or b""
    except (BlockingIOError, OSError, ValueError):
        return b""


class Attached:
    """A container's attach stream (stdin, stdout, stderr), opened before the container is used."""

    def __init__(self, api: APIClient, container_id: str) -> None:
        self.container_id = container_id
        params = {"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1}
        self._stream: Any = api.attach_socket(container_id, params=params)
        self.socket = raw_socket(self._stream)

    def shutdown(self) -> None:
        """Wake a thread relaying this stream, from another thread: it sees the end of the stream."""
        with contextlib.suppress(OSError):
            self.socket.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.shutdown()
        with contextlib.suppress(Exception):
            self._stream.close()
        with contextlib.suppress(OSError):
            self.socket.close()
