"""Interactive exec (PROTOCOL 5), the engine side: start an exec with its stdin attached, relay
its output with backpressure, write its input, resize it, and kill what it started when the
client goes away."""

from __future__ import annotations

import contextlib
import json
import socket
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

import anyio.to_thread

from .blocking_stream import BlockingStream
from .engine import APIClient, Engine
from .errors import ApiError
from .exec_run import (
    EXEC_MARKER_VARIABLE,
    kill_marked_processes,
    raw_socket,
    shell_command,
    take_buffered,
    wait_exit_code,
)
from .logs import parse_bool

READ_BYTES = 256 * 1024  # bigger frames: less per-frame cost on floods; memory stays bounded (8 in flight)


def invalid_query(why: str) -> ApiError:
    return ApiError(400, "invalid_query", why)


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
    demux: bool = False
    env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, query: Mapping[str, str]) -> ExecQuery:
        container_id = query.get("containerId") or ""
        if not container_id:
            raise invalid_query("containerId is required")
        try:
            tty = parse_bool("tty", query.get("tty"), False)
            demux = parse_bool("demux", query.get("demux"), False)
        except ApiError as error:
            raise invalid_query(error.message) from None
        return cls(
            container_id=container_id,
            command=_parse_command(query.get("command")),
            workdir=query.get("workdir") or None,
            tty=tty,
            demux=demux,
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


class InteractiveExec:
    """One running exec: its output as a bounded stream, its stdin, its size, its end."""

    def __init__(self, engine: Engine, query: ExecQuery, exec_id: str, marker: str, stream: object) -> None:
        self._engine = engine
        self.query = query
        self.exec_id = exec_id
        self._marker = marker
        self._stream = stream
        self._raw = raw_socket(stream)
        first = take_buffered(stream, self._raw)
        self._raw.setblocking(True)
        self.output = BlockingStream(_socket_chunks(self._raw, first), self._close_socket, engine.stream_limiter)

    @classmethod
    async def start(cls, engine: Engine, query: ExecQuery) -> InteractiveExec:
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
        return cls(engine, query, exec_id, marker, stream)

    def _close_socket(self) -> None:
        _shutdown(self._raw, socket.SHUT_RDWR)
        with contextlib.suppress(Exception):
            self._stream.close()  # type: ignore[attr-defined]
        with contextlib.suppress(OSError):
            self._raw.close()

    async def write(self, data: bytes) -> None:
        """Write to the process's stdin; a process that does not read it slows this, not the loop."""
        await anyio.to_thread.run_sync(self._raw.sendall, data, limiter=self._engine.stream_limiter)

    def close_stdin(self) -> None:
        _shutdown(self._raw, socket.SHUT_WR)

    async def resize(self, cols: int, rows: int) -> None:
        await self._engine.run(lambda api: api.exec_resize(self.exec_id, height=rows, width=cols))

    async def exit_code(self) -> int | None:
        """The exit code once the process has ended, or None when the container went away with it."""

        def inspect(api: APIClient) -> int | None:
            code = wait_exit_code(api, self.exec_id)
            container = api.inspect_container(self.query.container_id)
            return code if (container.get("State") or {}).get("Running") else None

        try:
            return await self._engine.run(inspect)
        except ApiError:
            return None

    async def kill(self) -> None:
        """Kill every process the exec started; the container itself is left alone."""
        await self._engine.run_stream(lambda api: kill_marked_processes(api, self.query.container_id, self._marker))

    async def aclose(self) -> None:
        await self.output.aclose()
