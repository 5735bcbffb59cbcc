"""Docker events over SSE (docs/protocol.md 4) against the real engine."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import uuid
from collections.abc import Iterator

import docker
import httpx
import pytest

from docker_runner_client import DockerEvent, HttpDockerRunnerClient, StartedContainer, Unauthorized, ValidationFailed
from docker_runner_client._signing import sign_headers
from tests.conftest import sleeper_opts
from tests.support.docker_env import SESSION_LABELS, TEST_IMAGE
from tests.support.server import TEST_SECRET, RunningServer, make_settings, running_runner
from tests.support.signed import error_of, signed_request
from tests.support.waiting import wait_for

pytestmark = pytest.mark.docker


class Collector:
    """Events of one subscription, gathered on a thread until every action of ``stop_after`` was seen."""

    def __init__(self, events: Iterator[DockerEvent], stop_after: tuple[str, ...] = ("destroy",)) -> None:
        self.events: list[DockerEvent] = []
        self._iterator = events
        self._stop_after = set(stop_after)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        for event in self._iterator:
            self.events.append(event)
            if self._stop_after <= set(self.actions()):
                return

    def actions(self) -> list[str]:
        return [event.action for event in self.events]

    def join(self) -> None:
        self._thread.join(timeout=30)
        assert not self._thread.is_alive(), f"still waiting; saw {self.actions()}"


def _listeners(api: docker.APIClient) -> int:
    return int(api.info()["NEventsListener"])


class CuttableProxy:
    """A TCP relay to the runner whose connections can be cut, and which turns new ones away while cut."""

    def __init__(self, target_port: int) -> None:
        self._target_port = target_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._open = threading.Event()
        self._open.set()
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                downstream, _ = self._listener.accept()
            except OSError:
                return
            if not self._open.is_set():
                downstream.close()
                continue
            upstream = socket.create_connection(("127.0.0.1", self._target_port))
            with self._lock:
                self._sockets += [downstream, upstream]
            for source, sink in ((downstream, upstream), (upstream, downstream)):
                threading.Thread(target=self._relay, args=(source, sink), daemon=True).start()

    @staticmethod
    def _relay(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        for end in (source, sink):
            end.close()

    def cut(self) -> None:
        self._open.clear()
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for end in sockets:
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)

    def reopen(self) -> None:
        self._open.set()

    def close(self) -> None:
        self.cut()
        self._listener.close()


GAP_ACTIONS = ("create", "start", "die", "destroy")


@contextlib.contextmanager
def _subscribed_through_a_proxy(
    runner: RunningServer, docker_api: docker.APIClient, case: str
) -> Iterator[tuple[CuttableProxy, Collector]]:
    """A reconnecting subscription to the events of containers labelled ``case``, through a proxy
    the test can cut, once the engine has the subscription."""
    proxy = CuttableProxy(runner.port)
    try:
        with HttpDockerRunnerClient(proxy.url, TEST_SECRET, retry_backoff_ms=50) as through_proxy:
            baseline = _listeners(docker_api)
            filters = {"type": ["container"], "label": [f"case={case}"]}
            collector = Collector(through_proxy.events(filters=filters, reconnect=True))
            wait_for(lambda: _listeners(docker_api) > baseline, what="the engine subscription")
            yield proxy, collector
    finally:
        proxy.close()


def _each_once(collector: Collector) -> None:
    actions = collector.actions()
    assert all(actions.count(action) == 1 for action in GAP_ACTIONS), actions


def test_a_drop_before_any_event_loses_nothing(
    runner: RunningServer, client: HttpDockerRunnerClient, docker_api: docker.APIClient
) -> None:
    """reconnect=True: a stream dropped before its first event resumes from its first connection, so
    the events of the gap arrive, once each."""
    with _subscribed_through_a_proxy(runner, docker_api, "events-gap") as (proxy, collector):
        proxy.cut()
        started = client.start_container(sleeper_opts(labels={**SESSION_LABELS, "case": "events-gap"}))
        client.remove_container(started.container_id, force=True)
        assert collector.events == []
        proxy.reopen()
        collector.join()
    _each_once(collector)
    assert {event.actor_id for event in collector.events} == {started.container_id}


def test_a_drop_after_an_event_resumes_after_it(
    runner: RunningServer, client: HttpDockerRunnerClient, docker_api: docker.APIClient
) -> None:
    """reconnect=True: a stream dropped after some events resumes after the last one: none twice, none lost."""
    with _subscribed_through_a_proxy(runner, docker_api, "events-resume-live") as (proxy, collector):
        started = client.start_container(sleeper_opts(labels={**SESSION_LABELS, "case": "events-resume-live"}))
        wait_for(lambda: "start" in collector.actions(), what="the start event")
        proxy.cut()
        client.remove_container(started.container_id, force=True)
        proxy.reopen()
        collector.join()
    _each_once(collector)


def test_lifecycle_events_in_order(client: HttpDockerRunnerClient, docker_api: docker.APIClient) -> None:
    """create, start, kill, die, stop and destroy of a labelled container arrive, in order, once each
    (the engine's stop sends SIGTERM then SIGKILL: one kill event per signal)."""
    baseline = _listeners(docker_api)
    collector = Collector(
        client.events(filters={"type": ["container"], "label": ["case=events-lifecycle"]}),
        stop_after=("stop", "destroy"),
    )
    wait_for(lambda: _listeners(docker_api) > baseline, what="the engine subscription")
    started = client.start_container(sleeper_opts(labels={**SESSION_LABELS, "case": "events-lifecycle"}))
    client.stop_container(started.container_id, timeout_sec=0)
    collector.join()
    actions = collector.actions()
    one_kill = [a for i, a in enumerate(actions) if a != "kill" or actions[i - 1] != "kill"]
    assert one_kill[:4] == ["create", "start", "kill", "die"]
    assert sorted(one_kill[4:]) == ["destroy", "stop"]  # auto-removed: destroy may come before stop
    signals = [event.attributes.get("signal") for event in collector.events if event.action == "kill"]
    assert signals[0] == "15"  # SIGTERM first, then SIGKILL once the 0 s grace is over
    assert {event.actor_id for event in collector.events} == {started.container_id}
    times = [event.time_nano for event in collector.events]
    up_to_die = times[: [event.action for event in collector.events].index("die") + 1]
    assert up_to_die == sorted(up_to_die)  # stop and destroy: the engine may send them out of time order
    assert len(set(times)) == len(times)


def test_filters_select_events(client: HttpDockerRunnerClient, docker_api: docker.APIClient) -> None:
    """Only the events the filters name arrive."""
    baseline = _listeners(docker_api)
    collector = Collector(
        client.events(filters={"type": ["container"], "event": ["destroy"], "label": ["case=events-filter"]})
    )
    wait_for(lambda: _listeners(docker_api) > baseline, what="the engine subscription")
    other = client.start_container(sleeper_opts(labels={**SESSION_LABELS, "case": "events-other"}))
    mine = client.start_container(sleeper_opts(labels={**SESSION_LABELS, "case": "events-filter"}))
    client.remove_container(other.container_id, force=True)
    client.remove_container(mine.container_id, force=True)
    collector.join()
    assert [(e.action, e.actor_id) for e in collector.events] == [("destroy", mine.container_id)]


def test_resume_with_last_event_id(client: HttpDockerRunnerClient) -> None:
    """A reconnect with Last-Event-ID gets what came after that event, nothing twice."""
    started = client.start_container(sleeper_opts(labels={**SESSION_LABELS, "case": "events-resume"}))
    client.remove_container(started.container_id, force=True)
    since = str(int(time.time()) - 60)
    filters = {"type": ["container"], "label": ["case=events-resume"]}
    first = Collector(client.events(since=since, filters=filters, until=str(int(time.time()) + 1)))
    first.join()
    assert first.actions()[:2] == ["create", "start"]
    resume_from = first.events[1]  # as if the connection dropped after "start"
    rest = Collector(
        client.events(
            since=since, until=str(int(time.time()) + 1), filters=filters, last_event_id=str(resume_from.time_nano)
        )
    )
    rest.join()
    assert [e.time_nano for e in rest.events] == [e.time_nano for e in first.events[2:]]


def _raw_sse(url: str, target: str, seconds: float) -> tuple[httpx.Response, str]:
    """Read a stream's raw text for a while."""
    from docker_runner_client._signing import sign_headers

    headers = sign_headers(TEST_SECRET, "GET", target, b"", str(int(time.time() * 1000)), f"n-{time.monotonic_ns()}")
    text = ""
    with httpx.stream("GET", url + target, headers=headers, timeout=10) as response:
        deadline = time.monotonic() + seconds
        for chunk in response.iter_text():
            text += chunk
            if time.monotonic() > deadline:
                break
    return response, text


def test_framing_headers_and_pings(docker_api: docker.APIClient) -> None:
    """data: frames end with \\n\\n (no \\r), carry an id:, and a quiet stream gets : ping comments."""
    with running_runner(make_settings(sse_ping_ms=200)) as server:
        with HttpDockerRunnerClient(server.url, TEST_SECRET) as client:
            started = client.start_container(sleeper_opts(labels={**SESSION_LABELS, "case": "events-raw"}))
            client.remove_container(started.container_id, force=True)
        since = str(int(time.time()) - 30)
        response, text = _raw_sse(server.url, f"/v1/events/sse?since={since}", 1.0)
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-cache, no-transform"
    assert response.headers["x-accel-buffering"] == "no"
    assert "\r" not in text
    assert ": ping\n\n" in text
    frames = [frame for frame in text.split("\n\n") if frame.startswith("id: ")]
    assert frames and all(frame.split("\n")[1].startswith('data: {"type":"event"') for frame in frames)


def test_errors_come_before_any_event(runner: RunningServer) -> None:
    """Auth and validation failures are ordinary JSON error answers; the client raises them."""
    bad = signed_request(runner.url, "GET", "/v1/events/sse?filters=%%%")
    assert (bad.status_code, error_of(bad)["code"]) == (400, "validation_error")
    assert "filters" in error_of(bad)["message"]
    not_json = signed_request(runner.url, "GET", "/v1/events/sse?filters=bm90IGpzb24")
    assert not_json.status_code == 400
    with HttpDockerRunnerClient(runner.url, "w" * 40, max_retries=0) as wrong, pytest.raises(Unauthorized):
        next(iter(wrong.events()))
    with HttpDockerRunnerClient(runner.url, TEST_SECRET) as client, pytest.raises(ValidationFailed):
        next(iter(client.events(since="yesterday")))


def test_subscriber_leaving_releases_the_engine_stream(docker_api: docker.APIClient) -> None:
    """When the subscriber goes away, the engine subscription and its thread end at once."""
    from docker_runner_client._signing import sign_headers

    baseline = _listeners(docker_api)
    with running_runner(make_settings(sse_ping_ms=200)) as server:
        limiter = server.runtime.engine.stream_limiter
        target = "/v1/events/sse"
        headers = sign_headers(TEST_SECRET, "GET", target, b"", str(int(time.time() * 1000)), "leaving-1")
        with httpx.stream("GET", server.url + target, headers=headers, timeout=10) as response:
            for _ in response.iter_text():  # a ping every 200 ms keeps this loop turning
                if _listeners(docker_api) == baseline + 1:
                    break
            assert limiter.borrowed_tokens == 1
        wait_for(lambda: _listeners(docker_api) == baseline, timeout=10, what="the engine subscription to end")
        wait_for(lambda: limiter.borrowed_tokens == 0, timeout=10, what="the reader thread to end")


def test_foreign_containers_never_show(client: HttpDockerRunnerClient, docker_api: docker.APIClient) -> None:
    """Containers outside the runner's scope never show, whatever their labels."""
    baseline = _listeners(docker_api)
    collector = Collector(client.events(filters={"type": ["container"], "label": ["case=events-scope"]}))
    wait_for(lambda: _listeners(docker_api) > baseline, what="the subscription")
    foreign = docker_api.create_container(TEST_IMAGE, ["true"], labels={**SESSION_LABELS, "case": "events-scope"})
    docker_api.remove_container(foreign["Id"], force=True)
    mine = client.start_container(sleeper_opts(labels={**SESSION_LABELS, "case": "events-scope"}))
    client.remove_container(mine.container_id, force=True)
    collector.join()
    assert {event.actor_id for event in collector.events} == {mine.container_id}


def _abandoned_request(url: str, target: str) -> None:
    """Send a signed GET and close the connection at once, before any answer can arrive."""
    host, port = url.removeprefix("http://").split(":")
    headers = sign_headers(TEST_SECRET, "GET", target, b"", str(int(time.time() * 1000)), str(uuid.uuid4()))
    lines = [f"GET {target} HTTP/1.1", f"Host: {host}:{port}", *(f"{k}: {v}" for k, v in headers.items())]
    with socket.create_connection((host, int(port))) as connection:
        connection.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())


@pytest.mark.parametrize("target", ["/v1/events/sse", "/v1/containers/logs/sse?containerId={cid}&follow=true"])
def test_a_client_gone_before_the_first_byte_leaves_no_stream_behind(container: StartedContainer, target: str) -> None:
    """Subscribers that leave while their stream is being opened give back their slot, thread and
    engine connection: with one slot, the next subscriber still gets in."""
    with running_runner(make_settings(stream_threads=1)) as server:
        for _ in range(10):
            _abandoned_request(server.url, target.format(cid=container.container_id))
        limiter = server.runtime.engine.stream_limiter
        wait_for(lambda: limiter.borrowed_tokens == 0, timeout=15, what="every abandoned stream to give its slot back")
        # an abandoned request the runner is still opening may hold the slot a moment longer; a
        # leaked slot would hold it for good
        response = wait_for(
            lambda: (
                (answer := signed_request(server.url, "GET", "/v1/events/sse?until=1", timeout=10)).status_code == 200
                and answer
            ),
            timeout=15,
            interval=0.2,
            what="a new subscriber to get the slot",
        )
        assert response.status_code == 200, response.text
