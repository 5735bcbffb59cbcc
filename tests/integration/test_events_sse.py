"""Docker events over SSE (PROTOCOL 4) against the real engine."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import docker
import httpx
import pytest

from docker_runner_client import DockerEvent, HttpDockerRunnerClient, Unauthorized, ValidationFailed
from tests.conftest import sleeper_opts
from tests.support.docker_env import SESSION_LABELS, TEST_IMAGE
from tests.support.server import TEST_SECRET, RunningServer, make_settings, running_runner
from tests.support.signed import error_of, signed_request
from tests.support.waiting import wait_for

pytestmark = pytest.mark.docker


class Collector:
    """Events of one subscription, gathered on a thread until ``stop_after`` matches."""

    def __init__(self, events: Iterator[DockerEvent], stop_after: str = "destroy") -> None:
        self.events: list[DockerEvent] = []
        self._iterator = events
        self._stop_after = stop_after
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        for event in self._iterator:
            self.events.append(event)
            if event.action == self._stop_after:
                return

    def actions(self) -> list[str]:
        return [event.action for event in self.events]

    def join(self) -> None:
        self._thread.join(timeout=30)
        assert not self._thread.is_alive(), f"still waiting; saw {self.actions()}"


def _listeners(api: docker.APIClient) -> int:
    return int(api.info()["NEventsListener"])


def test_lifecycle_events_in_order(client: HttpDockerRunnerClient, docker_api: docker.APIClient) -> None:
    """start, die and destroy of a labelled container arrive once each, in order."""
    baseline = _listeners(docker_api)
    collector = Collector(client.events(filters={"type": ["container"], "label": ["case=events-lifecycle"]}))
    wait_for(lambda: _listeners(docker_api) > baseline, what="the engine subscription")
    started = client.start_container(sleeper_opts(labels={**SESSION_LABELS, "case": "events-lifecycle"}))
    client.stop_container(started.container_id, timeout_sec=0)
    collector.join()
    actions = collector.actions()
    assert [a for a in actions if a in ("create", "start", "die", "destroy")] == ["create", "start", "die", "destroy"]
    assert {event.actor_id for event in collector.events} == {started.container_id}
    times = [event.time_nano for event in collector.events]
    assert times == sorted(times) and len(set(times)) == len(times)


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
    baseline = _listeners(docker_api)
    collector = Collector(client.events(filters={"type": ["container"], "label": ["case=events-scope"]}))
    wait_for(lambda: _listeners(docker_api) > baseline, what="the subscription")
    foreign = docker_api.create_container(TEST_IMAGE, ["true"], labels={**SESSION_LABELS, "case": "events-scope"})
    docker_api.remove_container(foreign["Id"], force=True)
    mine = client.start_container(sleeper_opts(labels={**SESSION_LABELS, "case": "events-scope"}))
    client.remove_container(mine.container_id, force=True)
    collector.join()
    assert {event.actor_id for event in collector.events} == {mine.container_id}
