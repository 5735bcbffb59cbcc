"""Waiting on an exec socket and a cancel pipe at once (blocking), for the exec loops.

``poll`` rather than ``select``: ``select`` fails outright on descriptors numbered 1024 and up,
which a busy runner reaches, and on waits too long for a C ``timeval``.
"""

from __future__ import annotations

import math
import select
import socket
from dataclasses import dataclass

# A wait longer than this is cut short and the loop simply waits again: poll's timeout is a C int
# of milliseconds, and a client may ask for a bound of years.
MAX_WAIT_SECONDS = 3600.0

READABLE = select.POLLIN | select.POLLPRI | select.POLLHUP | select.POLLERR  # a recv will not block


@dataclass(frozen=True)
class Readiness:
    cancelled: bool
    readable: bool
    writable: bool


def wait_for(raw: socket.socket, cancel_fd: int, want_write: bool, timeout_seconds: float) -> Readiness:
    """Wait until ``raw`` can be read (or written, when ``want_write``), ``cancel_fd`` is readable,
    or ``timeout_seconds`` pass (``inf``: no bound)."""
    poller = select.poll()
    poller.register(raw, READABLE | (select.POLLOUT if want_write else 0))
    poller.register(cancel_fd, READABLE)
    wait_ms = math.ceil(min(max(timeout_seconds, 0.0), MAX_WAIT_SECONDS) * 1000)
    cancelled = readable = writable = False
    for fd, mask in poller.poll(wait_ms):
        if fd == cancel_fd:
            cancelled = True
            continue
        # an invalid or hung-up socket reads as "readable": the next recv reports what happened
        readable = readable or bool(mask & (READABLE | select.POLLNVAL))
        writable = writable or bool(mask & select.POLLOUT)
    return Readiness(cancelled=cancelled, readable=readable, writable=writable)
