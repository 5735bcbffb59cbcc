"""A real redis-server on a free loopback port for one test session, and a raw RESP client for checks.

The client is a few lines of RESP over a socket on purpose: the tests pin what the server answers, not
how a client library wraps it.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from tests.support.waiting import wait_for

RespValue = str | int | bytes | None | list["RespValue"]


class RespError(Exception):
    """The server answered with an error reply (-ERR ...)."""


class RespConnection:
    """One connection speaking RESP2: command() sends an array of bulk strings and reads one reply."""

    def __init__(self, host: str, port: int, timeout: float = 5) -> None:
        self._sock = socket.create_connection((host, port), timeout=timeout)
        self._reader = self._sock.makefile("rb")

    def close(self) -> None:
        self._reader.close()
        self._sock.close()

    def __enter__(self) -> RespConnection:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def command(self, *args: str | bytes | int) -> RespValue:
        parts = [arg if isinstance(arg, bytes) else str(arg).encode() for arg in args]
        frame = b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(part), part) for part in parts)
        self._sock.sendall(frame)
        return self._reply()

    def _line(self) -> bytes:
        line = self._reader.readline()
        if not line.endswith(b"\r\n"):
            raise ConnectionError(f"redis closed the connection mid-reply: {line!r}")
        return line[:-2]

    def _reply(self) -> RespValue:
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RespError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            length = int(rest)
            if length < 0:
                return None
            data = self._reader.read(length + 2)
            return data[:-2]
        if kind == b"*":
            count = int(rest)
            return None if count < 0 else [self._reply() for _ in range(count)]
        raise ConnectionError(f"not a RESP reply: {line!r}")


@dataclass(frozen=True)
class RedisServer:
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def connect(self) -> RespConnection:
        return RespConnection(self.host, self.port)


def redis_problem() -> str | None:
    if shutil.which("redis-server") is None:
        return "redis-server is not installed (Debian: apt-get install redis-server)"
    return None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _answers_ping(server: RedisServer, process: subprocess.Popen[bytes]) -> bool:
    if process.poll() is not None:
        raise RuntimeError(f"redis-server exited {process.returncode}")
    try:
        with server.connect() as connection:
            return connection.command("PING") == "PONG"
    except OSError:
        return False


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _start(executable: str, workdir: str) -> tuple[RedisServer, subprocess.Popen[bytes]]:
    """A started redis-server that answers PING; RuntimeError when it exits first (its port was taken)."""
    server = RedisServer("127.0.0.1", _free_port())
    process = subprocess.Popen(
        [executable, "--bind", "127.0.0.1", "--port", str(server.port), "--save", "", "--appendonly", "no",
         "--dir", workdir, "--daemonize", "no", "--loglevel", "warning"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_for(lambda: _answers_ping(server, process), timeout=10, what="redis-server to answer PING")
    except BaseException:
        _stop(process)
        raise
    return server, process


@contextmanager
def running_redis(attempts: int = 3) -> Iterator[RedisServer]:
    """redis-server on 127.0.0.1 with nothing persisted; stopped (and waited for) on exit."""
    executable = shutil.which("redis-server")
    if executable is None:
        raise RuntimeError("redis-server is not installed")
    with tempfile.TemporaryDirectory(prefix="drbed-redis-") as workdir:
        for attempt in range(attempts):  # a free port can be taken between the probe and the bind
            try:
                server, process = _start(executable, workdir)
                break
            except RuntimeError:
                if attempt + 1 == attempts:
                    raise
        try:
            yield server
        finally:
            _stop(process)
