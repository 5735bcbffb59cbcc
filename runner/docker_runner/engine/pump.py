"""THE socket pump: one loop that relays a hijacked engine socket (an exec's, or a container's
attach stream) for the exec runs, the one-shot runs and the jobs alike (blocking).

It writes the input while it reads (a process may print before it reads, or never read at all),
half-closes the socket once the input is written (the process sees EOF), and hands every chunk
that arrives to its caller, until the stream ends, a bound passes, or a cancel arrives.

``poll`` rather than ``select``: ``select`` fails outright on descriptors numbered 1024 and up,
which a busy runner reaches, and on waits too long for a C ``timeval``.
"""

from __future__ import annotations

import contextlib
import enum
import math
import select
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass

READ_BYTES = 64 * 1024
# A wait longer than this is cut short and the loop simply waits again: poll's timeout is a C int
# of milliseconds, and a client may ask for a bound of years.
MAX_WAIT_SECONDS = 3600.0

READABLE = select.POLLIN | select.POLLPRI | select.POLLHUP | select.POLLERR  # a recv will not block


class Ending(enum.Enum):
    """How a relay ended; the values are the metrics' outcome labels."""

    EXITED = "exited"  # the stream ended: the process (or the container) is done with it
    TIMEOUT = "timeout"
    IDLE_TIMEOUT = "idle_timeout"
    CANCELLED = "cancelled"
    DONE = "done"  # the caller stopped reading: it had what it wanted


@dataclass(frozen=True)
class Readiness:
    cancelled: bool
    readable: bool
    writable: bool


def wait_for(raw: socket.socket, cancel_fd: int | None, want_write: bool, timeout_seconds: float) -> Readiness:
    """Wait until ``raw`` can be read (or written, when ``want_write``), ``cancel_fd`` is readable,
    or ``timeout_seconds`` pass (``inf``: no bound). A socket closed under the wait reads as readable:
    the next recv says what happened."""
    poller = select.poll()
    try:
        poller.register(raw, READABLE | (select.POLLOUT if want_write else 0))
    except (OSError, ValueError):  # closed from another thread (its descriptor is -1)
        return Readiness(cancelled=False, readable=True, writable=False)
    if cancel_fd is not None:
        poller.register(cancel_fd, READABLE)
    wait_ms = math.ceil(min(max(timeout_seconds, 0.0), MAX_WAIT_SECONDS) * 1000)
    cancelled = readable = writable = False
    for fd, mask in poller.poll(wait_ms):
        if fd == cancel_fd:
            cancelled = True
            continue
        readable = readable or bool(mask & (READABLE | select.POLLNVAL))
        writable = writable or bool(mask & select.POLLOUT)
    return Readiness(cancelled=cancelled, readable=readable, writable=writable)


def half_close(raw: socket.socket) -> None:
    """The end of the input: the process reads EOF."""
    with contextlib.suppress(OSError):
        raw.shutdown(socket.SHUT_WR)


class Pump:
    """Iterate for the chunks that arrive on ``raw`` while ``stdin`` is written to it; afterwards
    ``ending`` says why the relay stopped. ``stdin`` None leaves the input side alone (no stdin
    attached); empty is an immediate EOF. Stopping the iteration early ends it with ``DONE``.

    ``cancel_fd`` (a :class:`~docker_runner.engine.sockets.Canceller`'s) ends it at once from another
    thread; so does shutting ``raw`` down. ``timeout_seconds`` bounds the whole relay,
    ``idle_seconds`` the silence between two chunks (``inf``: no bound). ``end_input`` False keeps
    the input side open once written: an attach without stdin-once ends when its input does."""

    def __init__(
        self,
        raw: socket.socket,
        stdin: bytes | None = None,
        *,
        cancel_fd: int | None = None,
        timeout_seconds: float = math.inf,
        idle_seconds: float = math.inf,
        end_input: bool = True,
    ) -> None:
        self._raw = raw
        self._end_input = end_input
        self._pending = None if stdin is None else memoryview(stdin)
        self._cancel_fd = cancel_fd
        self._timeout_seconds = timeout_seconds
        self._idle_seconds = idle_seconds
        self.ending = Ending.DONE

    def __iter__(self) -> Iterator[bytes]:
        started = time.monotonic()
        total_deadline = started + self._timeout_seconds
        idle_deadline = started + self._idle_seconds
        self._raw.setblocking(False)
        if self._pending is not None and not self._pending:
            self._input_written()
        while True:
            now = time.monotonic()
            if now >= total_deadline:
                self.ending = Ending.TIMEOUT
                return
            if now >= idle_deadline:
                self.ending = Ending.IDLE_TIMEOUT
                return
            writing = self._pending is not None
            ready = wait_for(self._raw, self._cancel_fd, writing, min(total_deadline, idle_deadline) - now)
            if ready.cancelled:
                self.ending = Ending.CANCELLED
                return
            if ready.writable and self._pending is not None:
                self._write_some(self._pending)
            if ready.readable:
                data = self._read_some()
                if data == b"":
                    self.ending = Ending.EXITED
                    return
                if data:
                    self.ending = Ending.DONE  # what it is if the caller stops here
                    yield data
                    idle_deadline = time.monotonic() + self._idle_seconds

    @property
    def input_left(self) -> bool:
        """Some of the input was never written (the relay ended first)."""
        return self._pending is not None

    def _write_some(self, pending: memoryview) -> None:
        try:
            sent = self._raw.send(pending[:READ_BYTES])
        except (BlockingIOError, InterruptedError):
            return
        except OSError:  # the process went away without reading its input
            sent = len(pending)
        self._pending = pending[sent:]
        if not self._pending:
            self._input_written()

    def _input_written(self) -> None:
        self._pending = None
        if self._end_input:
            half_close(self._raw)

    def _read_some(self) -> bytes | None:
        """Bytes read; b"" at the end of the stream; None when nothing was there after all."""
        try:
            return self._raw.recv(READ_BYTES)
        except (BlockingIOError, InterruptedError):
            return None
        except OSError:
            return b""
