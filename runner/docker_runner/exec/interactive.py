"""Interactive exec (docs/protocol.md 5), the engine side: start an exec with its stdin attached, relay
its output with backpressure, write its input, resize it, and kill what it started when the
client goes away.

Ending stdin differs with a tty. Without one, a half-close of the exec's socket is EOF on the
process's stdin. With one, the engine does not close the terminal when stdin closes, it ends the
session's output instead, and the process would run on unseen: so ``close`` types the terminal's
end-of-file character (^D), as a user at the keyboard would, and output keeps flowing.
"""

from __future__ import annotations

import contextlib
import json
import socket
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

import anyio

from ..engine.core import APIClient, Engine, StreamLease, container_running
from ..engine.sockets import raw_socket, take_buffered
from ..engine.streams import BlockingStream
from ..engine.threads import in_thread
from ..errors import ApiError, Kind
from ..units import parse_flag
from .run import EXEC_MARKER_VARIABLE, kill_marked_processes, shell_command

READ_BYTES = 256 * 1024  # bigger frames: less per-frame cost on floods; memory stays bounded (8 in flight)
TTY_EOF = b"\x04"  # the terminal's end-of-file character (VEOF, ^D)
# Once the output has ended, how long the process may take to end before it is killed. The engine
# ends the output with the process; a longer gap means the attach broke while the process runs on.
END_WAIT_SECONDS = 10.0
KILLED_WAIT_SECONDS = 5.0
POLL_SECONDS = (0.005, 0.2)  # first and longest pause between looks at the exec's state


def invalid_query(why: str) -> ApiError:
    return ApiError(Kind.INVALID, "invalid_query", why)


def _parse_env(raw: str | None) -> dict[str, str]:
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        raise invalid_query("env must be a JSON object or array") from None
    if isinstance(value, dict) and all(isinstance(v, str) for v in value.values()):
        return {str(key): item for key, item in value.items()}
    if isinstance(value, list) and all(isinstance(item, str) and "=" in item for item in value):
        return dict(item.split("=", 1) for item in value)
    raise invalid_query("env must map names to strings, or list NAME=value strings")


def _flag(query: Mapping[str, str], name: str, default: bool) -> bool:
    try:
        return parse_flag(query.get(name), default)
    except ValueError as exc:
        raise invalid_query(f"{name}: {exc}") from None


def _parse_command(raw: str | None) -> list[str]:
    """A JSON array runs as given; anything else is a shell string for ``/bin/sh -lc``."""
    if not raw:
        raise invalid_query("command is required")
    if raw.lstrip().startswith("["):
        try:
            value = json.loads(raw)
        except ValueError:
            raise invalid_query("command looks like a JSON array but does not parse") from None
        if not value or not all(isinstance(part, str) for part in value):
            raise invalid_query("command must be a non-empty array of strings")
        return list(value)
    return shell_command(raw)


@dataclass(frozen=True)
class ExecQuery:
    container_id: str
    command: list[str]
    workdir: str | None = None
    tty: bool = False
    demux: bool = True  # stderr frames unless demux=false: the TypeScript client relies on it
    env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, query: Mapping[str, str]) -> ExecQuery:
        container_id = query.get("containerId") or ""
        if not container_id:
            raise invalid_query("containerId is required")
        return cls(
            container_id=container_id,
            command=_parse_command(query.get("command")),
            workdir=query.get("workdir") or None,
            tty=_flag(query, "tty", False),
            demux=_flag(query, "demux", True),
            env=_parse_env(query.get("env")),
        )


def _socket_chunks(raw: socket.socket, first: bytes) -> Iterator[bytes]:
    if first:
        yield first
    while True:
        try:
            chunk = raw.recv(READ_BYTES)
        except OSError:
            return
        if not chunk:
            return
        yield chunk


def _shutdown(raw: socket.socket, how: int) -> None:
    with contextlib.suppress(OSError):
        raw.shutdown(how)


@dataclass(frozen=True)
class _State:
    exec_running: bool
    exit_code: int | None
    container_running: bool


class InteractiveExec:
    """One running exec: its output as a bounded stream, its stdin, its size, its end."""

    def __init__(
        self, engine: Engine, query: ExecQuery, exec_id: str, marker: str, stream: object, lease: StreamLease
    ) -> None:
        self._engine = engine
        self.query = query
        self.exec_id = exec_id
        self._marker = marker
        self._stream = stream
        self._threads = lease.threads  # the session's own: its stdin never waits for another stream
        self._stdin_closed = False
        self._raw = raw_socket(stream)
        first = take_buffered(stream, self._raw)
        self._raw.setblocking(True)
        self.output = BlockingStream(_socket_chunks(self._raw, first), self._close_socket, self._threads)

    @classmethod
    async def start(cls, engine: Engine, query: ExecQuery, lease: StreamLease) -> InteractiveExec:
        marker = f"{EXEC_MARKER_VARIABLE}={uuid.uuid4().hex}"
        environment = [f"{key}={value}" for key, value in query.env.items()] + [marker]

        def start_blocking(api: APIClient) -> tuple[str, object]:
            created = api.exec_create(
                query.container_id,
                query.command,
                stdin=True,
                tty=query.tty,
                environment=environment,
                workdir=query.workdir,
            )
            exec_id = str(created["Id"])
            return exec_id, api.exec_start(exec_id, tty=query.tty, socket=True)

        exec_id, stream = await engine.run(start_blocking)
        return cls(engine, query, exec_id, marker, stream, lease)

    def _close_socket(self) -> None:
        _shutdown(self._raw, socket.SHUT_RDWR)
        with contextlib.suppress(Exception):
            self._stream.close()  # type: ignore[attr-defined]
        with contextlib.suppress(OSError):
            self._raw.close()

    async def write(self, data: bytes) -> None:
        """Write to the process's stdin; a process that does not read it slows this, not the loop.
        After ``close_stdin`` the input is dropped, tty or not."""
        if not self._stdin_closed:
            await self._send(data)

    async def _send(self, data: bytes) -> None:
        await in_thread(self._raw.sendall, data, limiter=self._threads)

    async def close_stdin(self) -> None:
        """The process sees the end of its input (see the module's docstring for a tty)."""
        if self._stdin_closed:
            return
        self._stdin_closed = True
        if self.query.tty:
            await self._send(TTY_EOF)
        else:
            _shutdown(self._raw, socket.SHUT_WR)

    async def resize(self, cols: int, rows: int) -> None:
        """Resize the exec's tty. A process that has ended already is not resized, and that is no
        error: a window resized as the process exits (or a resize sent as a short command ends)
        would otherwise end the client's session with an error frame instead of the exit code."""
        try:
            await self._engine.run(lambda api: api.exec_resize(self.exec_id, height=rows, width=cols))
        except ApiError:
            if await self._still_running():
                raise

    async def _still_running(self) -> bool:
        try:
            state = await self._engine.run(lambda api: api.exec_inspect(self.exec_id))
        except ApiError:
            return False  # gone with its container: the output's end says the rest
        return bool(state.get("Running"))

    def _state(self, api: APIClient) -> _State:
        exec_state = api.exec_inspect(self.exec_id)
        code = exec_state.get("ExitCode")
        return _State(
            exec_running=bool(exec_state.get("Running")),
            exit_code=None if code is None else int(code),
            container_running=container_running(api, self.query.container_id),
        )

    async def _wait_for_end(self, seconds: float) -> _State:
        """The exec's state once it has ended, or the container has, or ``seconds`` have passed."""
        deadline = anyio.current_time() + seconds
        pause, longest = POLL_SECONDS
        while True:
            try:
                state = await self._engine.run(self._state)
            except ApiError:
                # the exec is gone when its container is (404); any other failure is the engine's
                if await self._engine.run(lambda api: container_running(api, self.query.container_id)):
                    raise
                return _State(exec_running=False, exit_code=None, container_running=False)
            if not state.exec_running or not state.container_running or anyio.current_time() >= deadline:
                return state
            await anyio.sleep(pause)
            pause = min(pause * 2, longest)

    async def end(self) -> int:
        """The exit code, once the output has ended. A process that outlives its output past
        ``END_WAIT_SECONDS`` is killed (its exit code then says so). Raises 409
        ``container_not_running`` when the container went away with it."""
        state = await self._wait_for_end(END_WAIT_SECONDS)
        if state.exec_running and state.container_running:
            await self.kill()
            state = await self._wait_for_end(KILLED_WAIT_SECONDS)
        if not state.container_running:
            raise ApiError(Kind.CONFLICT, "container_not_running", "The container stopped while the exec was running")
        if state.exec_running or state.exit_code is None:
            raise ApiError(
                Kind.UPSTREAM, "exec_not_ended", "The exec's output ended but the engine still reports it running"
            )
        return state.exit_code

    async def kill(self) -> None:
        """Kill every process the exec started; the container itself is left alone. A short call:
        it never waits for a free stream slot."""
        await self._engine.run(lambda api: kill_marked_processes(api, self.query.container_id, self._marker))

    async def aclose(self) -> None:
        await self.output.aclose()
