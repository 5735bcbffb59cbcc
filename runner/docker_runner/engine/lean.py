"""The three engine calls of an exec run (create, start, inspect) over the engine's unix socket
with the standard library's ``http.client``, beside docker-py.

Measured here, docker-py (requests and urllib3) spends about 1.4 ms of its own on each call that
the engine answers in 0.3-0.6 ms; an exec run makes three, and that was the runner's whole distance
from docker-py's own figure (bench/exec_overhead.py). Every other engine call stays with docker-py:
only this hot path is worth a second client. An engine that is not on a unix socket (tcp, TLS,
ssh) has none, and exec runs use docker-py there.

Errors come out as docker-py's would through :func:`.core.engine_errors`: an engine refusal as
``from_engine(status, message)``, a transport failure as the ``OSError`` it is.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import threading
from typing import Any
from urllib.parse import quote, urlparse

from ..errors import from_engine

DEFAULT_SOCKET = "/var/run/docker.sock"
HEADERS_LIMIT = 64 * 1024
IDLE_KEPT = 16  # idle kept connections; past them a connection is closed once its call is done


def connected_unix_socket(path: str, timeout: float | None) -> socket.socket:
    """A socket connected to ``path``, or closed at once when it cannot be (never left to the
    garbage collector: a readiness probe against an absent engine would leak a descriptor)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect(path)
    except BaseException:
        sock.close()
        raise
    return sock


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        self.sock = connected_unix_socket(self._path, self.timeout)


def unix_socket_of(docker_host: str | None) -> str | None:
    """The engine's unix socket path for ``docker_host`` (else DOCKER_HOST, else the default);
    None for an engine elsewhere."""
    host = docker_host or os.environ.get("DOCKER_HOST") or f"unix://{DEFAULT_SOCKET}"
    parsed = urlparse(host)
    if parsed.scheme not in ("unix", "http+unix") or not parsed.path:
        return None
    return parsed.path


def _refusal(status: int, payload: bytes) -> Exception:
    try:
        message = str(json.loads(payload).get("message") or "")
    except (ValueError, AttributeError):
        message = payload.decode("utf-8", "replace").strip()
    return from_engine(status, message or f"the engine answered {status}")


class LeanExecClient:
    """Kept connections for create and inspect, shared by every thread (at most ``IDLE_KEPT`` idle:
    worker threads come and go, and a connection per thread would outlive its thread); a fresh one
    per start (the engine takes it over for the exec's stream)."""

    def __init__(self, socket_path: str, timeout_seconds: float) -> None:
        self._path = socket_path
        self._timeout = timeout_seconds
        self._lock = threading.Lock()
        self._idle: list[_UnixConnection] = []
        self._closed = False

    def _request(self, version: str, method: str, path: str, body: dict[str, Any] | None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if data is not None else {}
        for attempt in (0, 1):
            connection, reused = self._take()
            try:
                connection.request(method, f"/v{version}{path}", body=data, headers=headers)
                response = connection.getresponse()
                payload = response.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                connection.close()
                if reused and attempt == 0:  # the engine closed an idle connection: it never saw this one
                    self._drop_idle()  # the others are as old (an engine restart closes them all)
                    continue
                raise
            except BaseException:
                connection.close()
                raise
            self._give_back(connection)
            if response.status >= 400:
                raise _refusal(response.status, payload)
            return json.loads(payload) if payload else None
        raise AssertionError("unreachable")

    def _take(self) -> tuple[_UnixConnection, bool]:
        with self._lock:
            if self._idle:
                return self._idle.pop(), True
        return _UnixConnection(self._path, self._timeout), False

    def _give_back(self, connection: _UnixConnection) -> None:
        with self._lock:
            if not self._closed and len(self._idle) < IDLE_KEPT:
                self._idle.append(connection)
                return
        connection.close()

    def _drop_idle(self) -> None:
        with self._lock:
            connections, self._idle = self._idle, []
        for connection in connections:
            connection.close()

    def idle_connections(self) -> int:
        with self._lock:
            return len(self._idle)

    def exec_create(self, version: str, container_id: str, config: dict[str, Any]) -> str:
        created = self._request(version, "POST", f"/containers/{quote(container_id, safe='')}/exec", config)
        return str(created["Id"])

    def exec_inspect(self, version: str, exec_id: str) -> dict[str, Any]:
        state = self._request(version, "GET", f"/exec/{quote(exec_id, safe='')}/json", None)
        return state if isinstance(state, dict) else {}

    def exec_start(self, version: str, exec_id: str, tty: bool) -> tuple[socket.socket, bytes]:
        """The exec's stream, taken over from HTTP: (its socket, the stream's bytes already read
        past the answer's headers)."""
        body = json.dumps({"Detach": False, "Tty": tty}).encode()
        request = (
            f"POST /v{version}/exec/{quote(exec_id, safe='')}/start HTTP/1.1\r\n"
            "Host: localhost\r\nContent-Type: application/json\r\n"
            f"Connection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        sock = connected_unix_socket(self._path, self._timeout)
        try:
            sock.sendall(request)
            head, rest = _read_head(sock)
            status = _status_of(head)
            if status >= 400:
                raise _refusal(status, _body_after(sock, head, rest))
            sock.settimeout(None)
        except BaseException:
            sock.close()
            raise
        return sock, rest

    def close(self) -> None:
        with self._lock:
            self._closed = True
        self._drop_idle()


def _read_head(sock: socket.socket) -> tuple[bytes, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise http.client.RemoteDisconnected("the engine closed the connection before its answer")
        data += chunk
        if len(data) > HEADERS_LIMIT:
            raise http.client.HTTPException("the engine's answer has no end of headers")
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


def _status_of(head: bytes) -> int:
    parts = head.split(b"\r\n", 1)[0].split(b" ", 2)
    try:
        return int(parts[1])
    except (IndexError, ValueError):
        raise http.client.HTTPException(f"not an HTTP answer: {head[:80]!r}") from None


def _body_after(sock: socket.socket, head: bytes, rest: bytes) -> bytes:
    """The body of a refusal (its Content-Length's worth, or up to the connection's end)."""
    length = None
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip() or 0)
    chunked = b"transfer-encoding: chunked" in head.lower()
    while (length is None or len(rest) < length) and not (chunked and rest.endswith(b"0\r\n\r\n")):
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    return rest if length is None else rest[:length]
