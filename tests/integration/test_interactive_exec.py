"""Interactive exec over WebSocket (docs/protocol.md 5) against the real engine."""

from __future__ import annotations

import base64
import json
import resource
import socket
import time
import uuid

import anyio
import docker
import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from docker_runner.engine.core import Engine
from docker_runner.exec import interactive
from docker_runner.exec.interactive import ExecQuery, InteractiveExec
from docker_runner_client import (
    Conflict,
    HttpDockerRunnerClient,
    NotFound,
    RunnerTransportError,
    StartedContainer,
    Unauthorized,
    UpstreamError,
)
from docker_runner_client._signing import sign_headers
from tests.conftest import sleeper_opts
from tests.support.ps import processes
from tests.support.server import TEST_SECRET, RunningServer, make_settings, running_runner
from tests.support.signed import error_of, signed_request
from tests.support.waiting import wait_for

pytestmark = pytest.mark.docker

WS_PATH = "/v1/exec/interactive/ws"


def test_echo_through_stdin_and_eof(client: HttpDockerRunnerClient, container: StartedContainer) -> None:
    """stdin reaches the process; close ends stdin, cat ends, and exit still arrives."""
    with client.open_exec(container.container_id, ["cat"]) as session:
        assert len(session.exec_id) == 64
        session.send("héllo\n".encode())
        session.close_stdin()
        assert b"".join(out.data for out in session) == "héllo\n".encode()
        assert session.exit_code == 0
        assert session.last_output == ("héllo\n".encode(), b"")


def test_natural_exit_code_and_demux(client: HttpDockerRunnerClient, container: StartedContainer) -> None:
    """The exit frame carries the real exit code; demux (the default) splits stderr out, demux=false merges it."""
    with client.open_exec(container.container_id, "echo out; echo err >&2; exit 7", demux=True) as session:
        outputs = list(session)
        assert session.exit_code == 7
    assert {(o.stream, o.data) for o in outputs} == {("stdout", b"out\n"), ("stderr", b"err\n")}
    with client.open_exec(container.container_id, "echo err >&2", demux=False) as merged:
        assert [(o.stream, o.data) for o in merged] == [("stdout", b"err\n")]


def test_env_and_workdir(client: HttpDockerRunnerClient, container: StartedContainer) -> None:
    """env and workdir reach the process."""
    with client.open_exec(container.container_id, 'echo "$A"; pwd', env={"A": "a b"}, workdir="/tmp") as session:
        assert b"".join(o.data for o in session) == b"a b\n/tmp\n"


def _read_until(session: object, needle: bytes, timeout: float = 10) -> bytes:
    seen = b""
    deadline = time.monotonic() + timeout
    while needle not in seen:
        assert time.monotonic() < deadline, f"no {needle!r} in {seen[-300:]!r}"
        output = session._receive(timeout=max(0.1, deadline - time.monotonic()))  # type: ignore[attr-defined]
        if output is not None:
            seen += output.data
    return seen


def test_tty_resize_and_ctrl_c(
    client: HttpDockerRunnerClient, container: StartedContainer, docker_api: docker.APIClient
) -> None:
    """Resize by frame and by POST /v1/exec/resize shows in stty size; Ctrl-C interrupts sleep (130)."""
    with client.open_exec(container.container_id, ["/bin/sh"], tty=True) as session:
        session.resize(101, 31)
        session.send(b"stty size\n")
        _read_until(session, b"31 101")
        client.resize_exec(session.exec_id, 120, 40)
        session.send(b"stty size\n")
        _read_until(session, b"40 120")
        session.send(b"sleep 7781\n")
        wait_for(lambda: "sleep 7781" in processes(docker_api, container.container_id), what="sleep to start")
        session.send(b"\x03")
        session.send(b"echo rc=$?\n")
        _read_until(session, b"rc=130")
        assert "sleep 7781" not in processes(docker_api, container.container_id)
        session.send(b"exit 4\n")
        assert session.wait(timeout=10) == 4


def _running(api: docker.APIClient, container_id: str, args: str) -> bool:
    """Is a process with exactly these arguments running in the container?"""
    lines = processes(api, container_id).splitlines()[1:]
    return any(line.split(None, 2)[2:] == [args] for line in lines)


@pytest.mark.parametrize("command", ["/bin/sh", "cat"])
def test_tty_close_ends_input_and_still_yields_exit(
    client: HttpDockerRunnerClient, container: StartedContainer, docker_api: docker.APIClient, command: str
) -> None:
    """close on a tty is end of input: the shell (or cat) ends, exit 0 arrives, nothing is left running."""
    with client.open_exec(container.container_id, [command], tty=True) as session:
        session.send(b"echo said-$((6*7))\n" if command == "/bin/sh" else b"said-42\n")
        _read_until(session, b"said-42")
        wait_for(lambda: _running(docker_api, container.container_id, command), what=f"{command} to run")
        session.close_stdin()
        assert session.wait(timeout=15) == 0
    assert not _running(docker_api, container.container_id, command)


def test_sending_after_the_end_raises_the_clients_error(
    client: HttpDockerRunnerClient, container: StartedContainer
) -> None:
    """Once the runner closed the session, send raises RunnerTransportError, not a websockets error."""
    with client.open_exec(container.container_id, "true") as session:
        assert session.wait(timeout=10) == 0
        deadline = time.monotonic() + 10
        with pytest.raises(RunnerTransportError) as caught:
            while time.monotonic() < deadline:  # until the runner's close frame has been read
                session.send(b"too late")
                time.sleep(0.02)
    assert caught.value.code == "runner_session_closed"


async def _output_ends_before_the_process(container_id: str) -> tuple[int, float]:
    engine = Engine(make_settings(), None)
    lease = engine.lease_stream()
    session = await InteractiveExec.start(engine, ExecQuery(container_id, ["/bin/sh"], tty=True), lease)
    try:
        # a tty exec's half-closed stdin makes the engine end its output while the shell runs on
        session._raw.shutdown(socket.SHUT_WR)
        while await session.output.receive() is not None:
            pass
        await session.aclose()
        began = time.monotonic()
        return await session.end(), time.monotonic() - began
    finally:
        lease.release()
        engine.close()


async def _resize_after_the_end(container_id: str, docker_api: docker.APIClient) -> None:
    engine = Engine(make_settings(), None)
    lease = engine.lease_stream()
    session = await InteractiveExec.start(engine, ExecQuery(container_id, ["true"], tty=True), lease)
    try:
        wait_for(lambda: not docker_api.exec_inspect(session.exec_id)["Running"], timeout=10, what="true to end")
        await session.resize(100, 30)  # the engine refuses it; the session does not fail for it
        await session.aclose()
        assert await session.end() == 0
    finally:
        lease.release()
        engine.close()


def test_a_resize_after_the_process_ended_is_no_error(
    container: StartedContainer, docker_api: docker.APIClient
) -> None:
    """A resize that reaches the engine after the process ended (a short command, a window resized
    as the shell exits) is dropped: the session still ends with the exit code, not an error frame."""
    anyio.run(_resize_after_the_end, container.container_id, docker_api)


def test_a_process_outliving_its_output_is_killed_and_reported(
    container: StartedContainer, docker_api: docker.APIClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Output over but the process running: waited for (bounded), then killed, and its exit code given."""
    monkeypatch.setattr(interactive, "END_WAIT_SECONDS", 0.5)
    exit_code, waited = anyio.run(_output_ends_before_the_process, container.container_id)
    assert exit_code == 137  # SIGKILL
    assert 0.5 <= waited < 10
    assert not _running(docker_api, container.container_id, "/bin/sh")


def test_client_disconnect_kills_the_process(
    client: HttpDockerRunnerClient, container: StartedContainer, docker_api: docker.APIClient
) -> None:
    """A client that leaves gets its exec's processes killed, background jobs included."""
    session = client.open_exec(container.container_id, "sleep 7782 & sleep 7783")
    wait_for(lambda: "sleep 7783" in processes(docker_api, container.container_id), what="the exec to run")
    session.close()
    wait_for(
        lambda: "sleep 778" not in processes(docker_api, container.container_id),
        what="the session's processes to be killed",
    )


def _signed_upgrade_request(port: int, target: str) -> socket.socket:
    """A raw WebSocket handshake, after which this client never answers a ping."""
    headers = sign_headers(TEST_SECRET, "GET", target, b"", str(int(time.time() * 1000)), str(uuid.uuid4()))
    key = base64.b64encode(uuid.uuid4().bytes).decode()
    lines = [
        f"GET {target} HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
    ] + [f"{k}: {v}" for k, v in headers.items()]
    raw = socket.create_connection(("127.0.0.1", port))
    raw.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    assert b"101" in raw.recv(4096).split(b"\r\n", 1)[0]
    return raw


def test_silent_client_is_dropped_and_its_process_killed(
    runner: RunningServer, container: StartedContainer, docker_api: docker.APIClient
) -> None:
    """A client that stops answering pings (here every 1 s, 2 s to answer) loses its session."""
    target = f"{WS_PATH}?containerId={container.container_id}&command=sleep%207784"
    raw = _signed_upgrade_request(runner.port, target)
    try:
        wait_for(lambda: "sleep 7784" in processes(docker_api, container.container_id), what="the exec to run")
        wait_for(
            lambda: "sleep 7784" not in processes(docker_api, container.container_id),
            timeout=15,
            what="the unanswered pings to end the session",
        )
    finally:
        raw.close()


def test_container_death_ends_the_session_with_an_error(
    client: HttpDockerRunnerClient, docker_api: docker.APIClient
) -> None:
    """A container dying mid-session ends it with error container_not_running, never a hang."""
    started = client.start_container(sleeper_opts())
    with client.open_exec(started.container_id, "sleep 100") as session:
        docker_api.kill(started.container_id)
        with pytest.raises(Conflict) as caught:
            session.wait(timeout=20)
    assert caught.value.code == "container_not_running"


def test_sessions_beyond_the_stream_slots_are_refused_and_open_ones_keep_working(
    container: StartedContainer, docker_api: docker.APIClient
) -> None:
    """With every stream slot taken, an open session's stdin, resize and kill still work, and new
    WebSocket and SSE requests are refused at once with 503 too_many_streams (retryable)."""
    with (
        running_runner(make_settings(stream_threads=1)) as server,
        HttpDockerRunnerClient(server.url, TEST_SECRET, max_retries=0) as client,
    ):
        session = client.open_exec(container.container_id, ["/bin/sh"], tty=True)
        session.resize(99, 33)
        session.send(b"stty size; sleep 7785\n")
        _read_until(session, b"33 99")
        with pytest.raises(UpstreamError) as refused:
            client.open_exec(container.container_id, "true")
        assert (refused.value.status_code, refused.value.code, refused.value.retryable) == (
            503,
            "too_many_streams",
            True,
        )
        events = signed_request(server.url, "GET", "/v1/events/sse", timeout=10)
        assert (events.status_code, error_of(events)["code"], error_of(events)["retryable"]) == (
            503,
            "too_many_streams",
            True,
        )
        wait_for(lambda: "sleep 7785" in processes(docker_api, container.container_id), what="sleep to start")
        session.close()
        wait_for(
            lambda: "sleep 7785" not in processes(docker_api, container.container_id),
            what="the disconnect's kill",
        )
        wait_for(lambda: server.runtime.engine.stream_limiter.borrowed_tokens == 0, what="the slot to be free")
        with client.open_exec(container.container_id, "echo again") as again:
            assert b"".join(output.data for output in again) == b"again\n"


def test_slow_reader_slows_the_process_and_bounds_memory(docker_api: docker.APIClient) -> None:
    """A flood read slowly: the runner reads only as fast as the client, and its memory stays flat.
    (Random bytes: the WebSocket's compression would let zeros pile up unseen in socket buffers.)"""
    # a reader this slow cannot answer pings in time behind its unread data: patient pings here
    settings = make_settings(ws_ping_interval_seconds=20, ws_ping_timeout_seconds=20)
    with running_runner(settings) as server, HttpDockerRunnerClient(server.url, TEST_SECRET) as client:
        started = client.start_container(sleeper_opts())
        peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        with client.open_exec(started.container_id, "head -c 209715200 /dev/urandom") as session:
            received = 0
            for output in session:
                received += len(output.data)
                if received > 4 * 1024 * 1024:
                    break
                time.sleep(0.05)
            time.sleep(2)  # ample time for an unbounded relay to swallow the 200 MB
            assert "head -c 209715200" in processes(docker_api, started.container_id)  # held back by the reader
            grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before) / 1024
            assert grown_mib < 40, f"the process grew by {grown_mib:.0f} MiB"
        client.remove_container(started.container_id, force=True)


def test_refusals_and_bad_queries(runner: RunningServer, client: HttpDockerRunnerClient) -> None:
    """Plain GET is 426; a bad query closes 4000; a failed start sends error then 1011; bad auth refuses."""
    plain = httpx.get(runner.url + WS_PATH)
    assert (plain.status_code, plain.json()["error"]["code"]) == (426, "upgrade_required")
    with pytest.raises(NotFound) as missing:
        client.open_exec("does-not-exist-xyz", "true")
    assert missing.value.code == "no_such_container"
    target = f"{WS_PATH}?command=true"
    headers = sign_headers(TEST_SECRET, "GET", target, b"", str(int(time.time() * 1000)), str(uuid.uuid4()))
    with connect(runner.url.replace("http", "ws") + target, additional_headers=headers) as raw:
        frame = json.loads(raw.recv(timeout=10))
        assert (frame["type"], frame["code"]) == ("error", "invalid_query")
        with pytest.raises(ConnectionClosed) as closed:
            raw.recv(timeout=10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4000
    with HttpDockerRunnerClient(runner.url, "z" * 40) as wrong, pytest.raises(Unauthorized):
        wrong.open_exec("x", "true")


def test_failed_start_is_error_then_1011(runner: RunningServer, client: HttpDockerRunnerClient) -> None:
    """An exec that cannot start sends error, then closes with 1011."""
    stopped = client.start_container(sleeper_opts(auto_remove=False))
    client.stop_container(stopped.container_id, timeout_sec=0)
    try:
        target = f"{WS_PATH}?containerId={stopped.container_id}&command=true"
        headers = sign_headers(TEST_SECRET, "GET", target, b"", str(int(time.time() * 1000)), str(uuid.uuid4()))
        with connect(runner.url.replace("http", "ws") + target, additional_headers=headers) as raw:
            frame = json.loads(raw.recv(timeout=10))
            assert (frame["type"], frame["code"], frame["error"]) == ("error", "container_not_running", frame["error"])
            with pytest.raises(ConnectionClosed) as closed:
                raw.recv(timeout=10)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1011
    finally:
        client.remove_container(stopped.container_id, force=True)


def test_foreign_origin_is_refused(container: StartedContainer) -> None:
    """A browser page of another site never gets a shell; an allowed origin does."""
    settings = make_settings(allowed_origins=("https://platform.example",))
    with running_runner(settings) as server:
        target = f"{WS_PATH}?containerId={container.container_id}&command=true"
        url = server.url.replace("http", "ws") + target
        for origin, allowed in (("https://evil.example", False), ("https://platform.example", True)):
            headers = sign_headers(TEST_SECRET, "GET", target, b"", str(int(time.time() * 1000)), str(uuid.uuid4()))
            headers["Origin"] = origin
            if allowed:
                with connect(url, additional_headers=headers) as raw:
                    assert json.loads(raw.recv(timeout=10))["type"] == "ready"
                continue
            with pytest.raises(InvalidStatus) as refused:
                connect(url, additional_headers=headers, legacy=True)
            status = refused.value.response.status_code
            body = json.loads(refused.value.response.body or b"")
            assert (status, body["error"]["code"]) == (403, "origin_not_allowed")


@pytest.mark.parametrize("enabled", [False, True])
def test_compression_is_offered_only_when_configured(container: StartedContainer, enabled: bool) -> None:
    """permessage-deflate costs more CPU than base64 output saves on a fast link: off unless asked for."""
    with running_runner(make_settings(ws_compression=enabled)) as server:
        target = f"{WS_PATH}?containerId={container.container_id}&command=true"
        headers = sign_headers(TEST_SECRET, "GET", target, b"", str(int(time.time() * 1000)), str(uuid.uuid4()))
        with connect(server.url.replace("http", "ws") + target, additional_headers=headers) as raw:
            assert json.loads(raw.recv(timeout=10))["type"] == "ready"
            assert raw.response is not None
            extensions = raw.response.headers.get("Sec-WebSocket-Extensions") or ""
            assert ("permessage-deflate" in extensions) is enabled
