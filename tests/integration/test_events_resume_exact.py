"""Resuming the events stream under load, against the real engine: every event once, across many
reconnects, although the engine publishes slightly out of time order."""

from __future__ import annotations

import base64
import json
import random
import threading
import uuid
from collections.abc import Iterator

import docker
import httpx
import pytest

from docker_runner_client import HttpDockerRunnerClient
from tests.conftest import sleeper_opts
from tests.support.docker_env import SESSION_LABELS
from tests.support.server import RunningServer
from tests.support.signed import signed_stream

pytestmark = pytest.mark.docker

WORKERS = 3
CONTAINERS_PER_WORKER = 12


def _frames(response: httpx.Response) -> Iterator[tuple[str | None, dict[str, object]]]:
    """(id, payload) of each data frame of an SSE response."""
    event_id, data = None, []
    for line in response.iter_lines():
        if line == "":
            if data:
                yield event_id, json.loads("\n".join(data))
            event_id, data = None, []
        elif line.startswith("id:"):
            event_id = line[3:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].lstrip())


def _subscribe_with_reconnects(
    runner: RunningServer, filters: str, sentinel: threading.Event, out: list[dict[str, object]]
) -> int:
    """Read a few events per connection, then drop it and resume with Last-Event-ID, until the
    sentinel container's destroy arrives. Returns how many connections it took."""
    last_id: str | None = None
    connections = 0
    rng = random.Random(7)
    while True:
        connections += 1
        headers = {"last-event-id": last_id} if last_id else {}
        target = f"/v1/events/sse?filters={filters}"
        with signed_stream(runner.url, target, headers=headers) as response:
            assert response.status_code == 200, response.read()
            budget = rng.randint(1, 6)
            for event_id, payload in _frames(response):
                if payload.get("type") != "event":
                    continue
                event = payload["event"]
                assert isinstance(event, dict)
                out.append(event)
                last_id = event_id
                if event.get("Action") == "destroy" and sentinel.is_set() and _is_sentinel(event):
                    return connections
                budget -= 1
                if budget == 0:
                    break


def _is_sentinel(event: dict[str, object]) -> bool:
    actor = event.get("Actor")
    return isinstance(actor, dict) and (actor.get("Attributes") or {}).get("sentinel") == "yes"


def _churn(client: HttpDockerRunnerClient, labels: dict[str, str]) -> None:
    for _ in range(CONTAINERS_PER_WORKER):
        started = client.start_container(sleeper_opts(labels=labels, cmd=["true"], auto_remove=False))
        client.remove_container(started.container_id, force=True)


def test_every_event_once_across_many_resumes_under_load(
    runner: RunningServer, client: HttpDockerRunnerClient, docker_api: docker.APIClient
) -> None:
    """Three clients churn containers while a subscriber drops its connection every few events and
    resumes with Last-Event-ID: it gets exactly the events the engine recorded, none twice."""
    case = f"events-exact-{uuid.uuid4().hex[:8]}"
    labels = {**SESSION_LABELS, "case": case}
    filters = base64.b64encode(json.dumps({"type": ["container"], "label": [f"case={case}"]}).encode()).decode()
    delivered: list[dict[str, object]] = []
    sentinel_started = threading.Event()
    result: dict[str, int] = {}

    def subscriber() -> None:
        result["connections"] = _subscribe_with_reconnects(runner, filters, sentinel_started, delivered)

    # the engine's own live view, for comparison: its history (what `since` replays) keeps only
    # its last 256 events, too few on a busy shared daemon to check a run like this afterwards
    direct = docker_api.events(filters={"label": [f"case={case}"]}, decode=True)
    recorded: list[dict[str, object]] = []

    def witness() -> None:
        for event in direct:
            recorded.append(event)
            if event.get("Action") == "destroy" and _is_sentinel(event):
                return

    watcher = threading.Thread(target=witness, daemon=True)
    watcher.start()
    reader = threading.Thread(target=subscriber, daemon=True)
    reader.start()
    workers = [threading.Thread(target=_churn, args=(client, labels)) for _ in range(WORKERS)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=180)
    sentinel_started.set()
    sentinel = client.start_container(sleeper_opts(labels={**labels, "sentinel": "yes"}, auto_remove=False))
    client.remove_container(sentinel.container_id, force=True)
    reader.join(timeout=60)
    watcher.join(timeout=60)
    direct.close()
    assert not reader.is_alive(), "the subscriber never saw the sentinel's destroy"
    assert not watcher.is_alive(), "the engine's own subscription never saw the sentinel's destroy"
    expected = [event for event in recorded if event.get("Type") == "container"]

    def key(event: dict[str, object]) -> tuple[object, ...]:
        return (event["timeNano"], event["Action"], json.dumps(event["Actor"], sort_keys=True))

    keys = [key(event) for event in delivered]
    assert len(keys) == len(set(keys)), "an event was delivered twice"
    assert sorted(keys) == sorted(key(event) for event in expected)
    assert result["connections"] >= 20
