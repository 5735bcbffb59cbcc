"""Interactive exec sessions over the runner's WebSocket (docs/protocol.md 5), sync and async.

The frame handling is shared (:class:`_SessionState`); the two session classes only move frames.
A closed connection, on a send as on a receive, raises :class:`RunnerTransportError`, never the
websockets library's own exceptions.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Iterator
from types import TracebackType
from typing import Any

from websockets.asyncio.client import ClientConnection as AsyncConnection
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection

from ._exceptions import DockerRunnerError, RunnerTimeout, RunnerTransportError, error_from_frame, error_from_response
from ._models import ExecOutput


def refused_upgrade(exc: InvalidStatus) -> DockerRunnerError:
    """A refused upgrade, raised like any REST answer with that status."""
    return error_from_response(exc.response.status_code, bytes(exc.response.body or b""))


def _stdin(data: bytes) -> str:
    return json.dumps({"type": "stdin", "data": base64.b64encode(data).decode("ascii")})


def _resize(cols: int, rows: int) -> str:
    return json.dumps({"type": "resize", "cols": cols, "rows": rows})


CLOSE_STDIN = json.dumps({"type": "close"})


class _SessionState:
    """What the frames said so far: the exec id, output, and the end."""

    def __init__(self) -> None:
        self.exec_id = ""
        self.exit_code: int | None = None
        self.last_stdout = b""  # the exit frame's tails: at most the last 256 KiB of each stream
        self.last_stderr = b""

    @property
    def ended(self) -> bool:
        return self.exit_code is not None

    def take(self, text: str | bytes) -> ExecOutput | None:
        """Apply one frame; output is returned, the end is recorded, an error frame raises."""
        frame: Any = json.loads(text)
        kind = frame.get("type") if isinstance(frame, dict) else None
        if kind in ("stdout", "stderr"):
            return ExecOutput(stream=kind, data=base64.b64decode(frame.get("data") or ""))
        if kind == "ready":
            self.exec_id = str(frame.get("execId") or "")
        elif kind == "exit":
            self.exit_code = int(frame.get("exitCode", -1))
            self.last_stdout = base64.b64decode(frame.get("stdout") or "")
            self.last_stderr = base64.b64decode(frame.get("stderr") or "")
        elif kind == "error":
            raise error_from_frame(frame)
        return None

    def closed_early(self, exc: ConnectionClosed) -> RunnerTransportError:
        return RunnerTransportError(
            f"the exec session closed before it ended: {exc}", code="runner_connection_error", retryable=False
        )

    def closed_on_send(self, exc: ConnectionClosed) -> RunnerTransportError:
        how = "after the process ended" if self.ended else "before the process ended"
        return RunnerTransportError(
            f"cannot send: the exec session is closed ({how}): {exc}", code="runner_session_closed", retryable=False
        )


class ExecSession:
    """A running interactive exec. Iterate for output; ``wait()`` for the exit code."""

    def __init__(self, connection: ClientConnection) -> None:
        self._connection = connection
        self._state = _SessionState()
        while not self._state.exec_id:  # the runner says ready (or why not) first
            self._receive()

    @property
    def exec_id(self) -> str:
        return self._state.exec_id

    @property
    def exit_code(self) -> int | None:
        return self._state.exit_code

    @property
    def last_output(self) -> tuple[bytes, bytes]:
        """The exit frame's stdout and stderr tails."""
        return self._state.last_stdout, self._state.last_stderr

    def _receive(self, timeout: float | None = None) -> ExecOutput | None:
        try:
            return self._state.take(self._connection.recv(timeout))
        except ConnectionClosed as exc:
            raise self._state.closed_early(exc) from exc
        except TimeoutError as exc:
            raise RunnerTimeout(
                f"no frame from the exec session within {timeout} s", code="runner_timeout", retryable=False
            ) from exc

    def _send(self, text: str) -> None:
        try:
            self._connection.send(text)
        except ConnectionClosed as exc:
            raise self._state.closed_on_send(exc) from exc

    def send(self, data: bytes) -> None:
        self._send(_stdin(data))

    def close_stdin(self) -> None:
        self._send(CLOSE_STDIN)

    def resize(self, cols: int, rows: int) -> None:
        self._send(_resize(cols, rows))

    def __iter__(self) -> Iterator[ExecOutput]:
        while not self._state.ended:
            output = self._receive()
            if output is not None:
                yield output

    def wait(self, timeout: float | None = None) -> int:
        """Discard output until the process ends; its exit code."""
        while not self._state.ended:
            self._receive(timeout)
        assert self._state.exit_code is not None
        return self._state.exit_code

    def close(self) -> None:
        """Leave the session: the runner kills whatever the exec still runs."""
        self._connection.close()

    def __enter__(self) -> ExecSession:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class AsyncExecSession:
    """The asynchronous ExecSession. Create with ``await client.open_exec(...)``."""

    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection
        self._state = _SessionState()

    async def _started(self) -> AsyncExecSession:
        while not self._state.exec_id:
            await self._receive()
        return self

    @property
    def exec_id(self) -> str:
        return self._state.exec_id

    @property
    def exit_code(self) -> int | None:
        return self._state.exit_code

    @property
    def last_output(self) -> tuple[bytes, bytes]:
        return self._state.last_stdout, self._state.last_stderr

    async def _receive(self) -> ExecOutput | None:
        try:
            return self._state.take(await self._connection.recv())
        except ConnectionClosed as exc:
            raise self._state.closed_early(exc) from exc

    async def _send(self, text: str) -> None:
        try:
            await self._connection.send(text)
        except ConnectionClosed as exc:
            raise self._state.closed_on_send(exc) from exc

    async def send(self, data: bytes) -> None:
        await self._send(_stdin(data))

    async def close_stdin(self) -> None:
        await self._send(CLOSE_STDIN)

    async def resize(self, cols: int, rows: int) -> None:
        await self._send(_resize(cols, rows))

    async def __aiter__(self) -> AsyncIterator[ExecOutput]:
        while not self._state.ended:
            output = await self._receive()
            if output is not None:
                yield output

    async def wait(self) -> int:
        while not self._state.ended:
            await self._receive()
        assert self._state.exit_code is not None
        return self._state.exit_code

    async def close(self) -> None:
        await self._connection.close()

    async def __aenter__(self) -> AsyncExecSession:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
