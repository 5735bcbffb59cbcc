"""The blocking side of a job: its container created with stdin attached, and the attach socket
written and read at once (the job may print before it reads its input, or never read it)."""

from __future__ import annotations

import contextlib
import select
import socket
from collections.abc import Iterator
from typing import Any

from .engine import APIClient, remove_if_present
from .oneshot import Attached
from .socket_wait import READABLE

READ_BYTES = 64 * 1024


def create_attached(api: APIClient, body: dict[str, Any]) -> tuple[str, Attached]:
    """Create the container and attach to its stdin, stdout and stderr before it starts, so that
    nothing it prints is missed."""
    container_id = str(api.create_container_from_config(body)["Id"])
    try:
        return container_id, Attached(api, container_id)
    except BaseException:
        remove_if_present(api, container_id)
        raise


def shutdown_socket(sock: socket.socket) -> None:
    """Wake a thread blocked in :func:`exchange` from another thread: it sees the end of the stream."""
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


def exchange(sock: socket.socket, payload: bytes) -> Iterator[bytes]:
    """Send ``payload`` then EOF while reading; yield what arrives until the stream ends (the
    container exited) or :func:`shutdown_socket` is called."""
    pending = memoryview(payload)
    sock.setblocking(False)
    poller = select.poll()
    poller.register(sock, READABLE | select.POLLOUT)
    while True:
        try:
            ready = poller.poll()
        except (OSError, ValueError):
            return
        mask = ready[0][1] if ready else 0
        if mask & select.POLLNVAL:
            return  # closed under us
        if mask & select.POLLOUT and pending:
            pending = _send_some(sock, pending)
            if not pending:
                poller.modify(sock, READABLE)
        if mask & READABLE:
            try:
                data = sock.recv(READ_BYTES)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                return
            if not data:
                return
            yield data


def _send_some(sock: socket.socket, pending: memoryview) -> memoryview:
    try:
        sent = sock.send(pending[:READ_BYTES])
    except (BlockingIOError, InterruptedError):
        return pending
    except OSError:
        return memoryview(b"")  # the job ended without reading its input
    pending = pending[sent:]
    if not pending:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_WR)
    return pending
