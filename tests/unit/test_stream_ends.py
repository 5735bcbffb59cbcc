"""How streams end, against small real servers on local sockets: the runner tells an engine body
that ended from one broken off, and the client resumes an events subscription that ended."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import anyio
import pytest

from docker_runner.containers import events, logs
from docker_runner.engine.core import Engine
from docker_runner.errors import ApiError
from docker_runner.protocol.event_cursor import EventCursor
from docker_runner_client import AsyncHttpDockerRunnerClient, HttpDockerRunnerClient, StreamError
from tests.support.server import TEST_SECRET, make_settings

EVENT_A = b'{"Type":"container","Action":"start","Actor":{"ID":"a"},"timeNano":100}\n'
EVENT_B = b'{"Type":"container","Action":"die","Actor":{"ID":"a"},"timeNano":200}\n'


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def _log_frame(stream: int, data: bytes) -> bytes:
    return bytes([stream, 0, 0, 0]) + len(data).to_bytes(4, "big") + data


class FakeEngine:
    """An HTTP server on a Unix socket that answers every request with one scripted answer:
    ``chunks`` then ``ending``: "clean" (the last chunk), "cut" (half a chunk, then the connection
    closes), or "hold" (stays open until the server stops)."""

    def __init__(self, path: Path, chunks: list[bytes], ending: str, status: str = "200 OK") -> None:
        self.path = path
        self._chunks = chunks
        self._ending = ending
        self._status = status
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(str(path))
        self._listener.listen()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        connection, _ = self._listener.accept()
        with connection:
            request = b""
            while b"\r\n\r\n" not in request:
                request += connection.recv(65536)
            head = f"HTTP/1.1 {self._status}\r\nContent-Type: application/json\r\n"
            connection.sendall((head + "Transfer-Encoding: chunked\r\n\r\n").encode())
            for chunk in self._chunks:
                connection.sendall(_chunk(chunk))
            if self._ending == "clean":
                connection.sendall(b"0\r\n\r\n")
            elif self._ending == "cut":
                connection.sendall(b"40\r\n" + EVENT_B[:10])
            else:
                self._stop.wait(30)

    def close(self) -> None:
        self._stop.set()
        self._listener.close()
        self._thread.join(timeout=10)
        self.path.unlink(missing_ok=True)


@contextmanager
def fake_engine(tmp_path: Path, chunks: list[bytes], ending: str, status: str = "200 OK") -> Iterator[Engine]:
    server = FakeEngine(tmp_path / "engine.sock", chunks, ending, status)
    engine = Engine(make_settings(docker_host=f"unix://{server.path}", docker_api_version="1.41"))
    try:
        yield engine
    finally:
        engine.close()
        server.close()


def _payloads(messages: list[Any]) -> list[dict[str, Any]]:
    return [json.loads(message.data) for message in messages if message.data]


async def _event_frames(engine: Engine) -> list[dict[str, Any]]:
    stream = await events.subscribe(engine, None, None, {"type": ["container"]}, EventCursor(None))
    frames = [message async for message in events.frames(stream, EventCursor(None), 30)]
    assert engine.stream_limiter.borrowed_tokens == 0  # the stream's slot is back
    return _payloads(frames)


async def _log_frames(engine: Engine) -> list[dict[str, Any]]:
    stream = await logs.open_logs(engine, "c", logs.LogQuery())
    return _payloads([message async for message in logs.frames(stream, False, 30)])


def test_an_event_stream_the_engine_ends_ends_quietly(tmp_path: Path) -> None:
    """A complete body (its last chunk came): every event, and no error frame."""
    with fake_engine(tmp_path, [EVENT_A, EVENT_B[:20], EVENT_B[20:]], "clean") as engine:
        payloads = anyio.run(_event_frames, engine)
    assert [p["event"]["timeNano"] for p in payloads] == [100, 200]


def test_an_event_stream_broken_off_ends_with_an_error_frame(tmp_path: Path) -> None:
    """A body broken off mid-chunk (the engine went away): the events so far, then an error frame."""
    with fake_engine(tmp_path, [EVENT_A], "cut") as engine:
        payloads = anyio.run(_event_frames, engine)
    assert [p["type"] for p in payloads] == ["event", "error"]
    assert "broke the stream off" in payloads[-1]["message"]


def test_a_log_stream_broken_off_is_an_error_not_an_end(tmp_path: Path) -> None:
    """Logs: a complete body ends with end; a broken one with error, never a false end."""
    chunks = [_log_frame(1, b"out\n"), _log_frame(2, b"err\n")]
    with fake_engine(tmp_path, chunks, "clean") as engine:
        assert [p["type"] for p in anyio.run(_log_frames, engine)] == ["chunk", "chunk", "end"]
    with fake_engine(tmp_path, chunks, "cut") as engine:
        payloads = anyio.run(_log_frames, engine)
    assert [(p["type"], p.get("stream")) for p in payloads] == [
        ("chunk", "stdout"),
        ("chunk", "stderr"),
        ("error", None),
    ]


async def _leave_early(engine: Engine) -> tuple[list[dict[str, Any]], BaseException | None]:
    stream = await events.subscribe(engine, None, None, {"type": ["container"]}, EventCursor(None))
    frames = events.frames(stream, EventCursor(None), 30)
    first = await frames.__anext__()
    await frames.aclose()  # the subscriber went away
    assert engine.stream_limiter.borrowed_tokens == 0
    return _payloads([first]), stream.error


def test_closing_a_stream_from_our_side_is_quiet(tmp_path: Path) -> None:
    """A subscriber leaving closes the engine stream: that is no failure of the engine's."""
    with fake_engine(tmp_path, [EVENT_A], "hold") as engine:
        payloads, error = anyio.run(_leave_early, engine)
    assert [p["type"] for p in payloads] == ["event"] and error is None


def test_an_engine_error_answer_keeps_the_engines_message(tmp_path: Path) -> None:
    """An error answer to a stream's opening carries the engine's own message and its code."""
    body = b'{"message":"Could not find the file /nope in container c"}'
    with fake_engine(tmp_path, [body], "clean", status="404 Not Found") as engine:
        with pytest.raises(ApiError) as caught:
            anyio.run(_log_frames, engine)
        assert engine.stream_limiter.borrowed_tokens == 0
    assert (caught.value.status, caught.value.code) == (404, "no_such_path")
    assert caught.value.message == "Could not find the file /nope in container c"


class FakeRunner(ThreadingHTTPServer):
    """Answers ``/v1/events/sse`` from a script, one answer per request (the last one repeats),
    each ending with the connection; remembers what each request asked for."""

    def __init__(self, answers: list[list[str]]) -> None:
        self.answers = answers
        self.requests: list[dict[str, str | None]] = []
        super().__init__(("127.0.0.1", 0), _FakeRunnerHandler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _FakeRunnerHandler(BaseHTTPRequestHandler):
    server: FakeRunner

    def do_GET(self) -> None:
        query = parse_qs(urlsplit(self.path).query)
        self.server.requests.append(
            {"last-event-id": self.headers.get("last-event-id"), "since": (query.get("since") or [None])[0]}
        )
        frames = self.server.answers[min(len(self.server.requests), len(self.server.answers)) - 1]
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.end_headers()
        self.wfile.write("".join(frames).encode())

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _event(time_nano: int) -> str:
    event = {"Type": "container", "Action": "start", "Actor": {"ID": "a"}, "timeNano": time_nano}
    return f"id: {time_nano}\ndata: {json.dumps({'type': 'event', 'event': event})}\n\n"


ERROR_FRAME = 'data: {"type":"error","message":"the engine\'s event stream failed"}\n\n'


@contextmanager
def fake_runner(answers: list[list[str]]) -> Iterator[tuple[FakeRunner, HttpDockerRunnerClient]]:
    """The fake runner, and a client of it that waits only 5 ms before its first reconnect."""
    server = FakeRunner(answers)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with HttpDockerRunnerClient(server.url, TEST_SECRET, retry_backoff_ms=5) as client:
            yield server, client
    finally:
        server.shutdown()
        server.server_close()


def _first(client: HttpDockerRunnerClient, count: int, **options: Any) -> list[int]:
    iterator = client.events(**options)
    return [next(iterator).time_nano for _ in range(count)]


def test_reconnect_follows_a_clean_end_and_an_error_frame_by_last_event_id() -> None:
    """Without until, an end and an error frame are drops: the client comes back after the last event."""
    with fake_runner([[_event(100)], [ERROR_FRAME], [": ping\n\n", _event(200)]]) as (server, client):
        assert _first(client, 2, reconnect=True) == [100, 200]
    assert [r["last-event-id"] for r in server.requests] == [None, "100", "100"]


def test_reconnect_before_any_event_resumes_from_the_first_answer() -> None:
    """No event seen yet: the next connection asks since the first one was answered (the runner's Date)."""
    subscribed_at = int(time.time())
    with fake_runner([[": ping\n\n"], [_event(300)]]) as (server, client):
        assert _first(client, 1, reconnect=True) == [300]
    first, second = server.requests
    assert first["since"] is None and second["last-event-id"] is None
    assert second["since"] is not None and subscribed_at <= int(second["since"]) <= subscribed_at + 2


def test_a_given_since_is_kept_until_an_event_arrives() -> None:
    """A caller's since is where a reconnect before any event starts again."""
    with fake_runner([[": ping\n\n"], [_event(300)]]) as (server, client):
        assert _first(client, 1, reconnect=True, since="1700000000") == [300]
    assert [r["since"] for r in server.requests] == ["1700000000", "1700000000"]


def test_without_reconnect_or_with_until_an_end_is_the_end() -> None:
    """reconnect=False, or an until, keeps a clean end final."""
    with fake_runner([[_event(100)], [_event(200)]]) as (server, client):
        assert [e.time_nano for e in client.events()] == [100]
        assert [e.time_nano for e in client.events(reconnect=True, until="1900000000")] == [200]
    assert len(server.requests) == 2


def test_without_reconnect_an_error_frame_raises() -> None:
    """Without reconnect, an error frame raises StreamError after the events before it."""
    with fake_runner([[_event(100), ERROR_FRAME]]) as (_, client):
        iterator = client.events()
        assert next(iterator).time_nano == 100
        with pytest.raises(StreamError):
            next(iterator)


async def _first_async(url: str, count: int) -> list[int]:
    async with AsyncHttpDockerRunnerClient(url, TEST_SECRET, retry_backoff_ms=5) as client:
        received = []
        async for event in client.events(reconnect=True):
            received.append(event.time_nano)
            if len(received) == count:
                return received
    return received


def test_the_async_client_reconnects_the_same_way() -> None:
    """The async events iterator also comes back after an end and an error frame, by Last-Event-ID."""
    with fake_runner([[_event(100)], [ERROR_FRAME], [_event(200)]]) as (server, _):
        assert anyio.run(_first_async, server.url, 2) == [100, 200]
    assert [r["last-event-id"] for r in server.requests] == [None, "100", "100"]
