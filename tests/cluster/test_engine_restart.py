"""The engine SIGKILLed and restarted twice under a mixed load: nothing of the runner's own work is
left, no answer is a 500, every answer is right or a typed retryable error, and the events
subscriber resumes without a repeat. The engine is one of the bed's (its own dockerd in its own
network namespace); the runner in front of it is a plain single-host runner."""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import docker.errors
import pytest

from docker_runner_client import (
    Conflict,
    ContainerOpts,
    DockerRunnerError,
    DockerRunnerRequestError,
    ExecOptions,
    HttpDockerRunnerClient,
    NotFound,
    RunnerTransportError,
)
from tests.support.docker_env import SESSION_LABELS, TEST_IMAGE
from tests.support.server import TEST_SECRET, RunningServer, make_settings, running_runner
from tests.support.signed import signed_stream
from tests.support.swarm_bed import NodeOutage, SwarmBed
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.docker]

NODE = 3
RESTARTS = 2
OUTAGE_SECONDS = 2.0


@dataclass
class Tally:
    """What the load saw: right answers, retryable refusals, and anything else (a failure of the test)."""

    right: int = 0
    retryable: int = 0
    gone: int = 0  # the restart stopped (and auto-removed) a container: 404 or 409, true answers
    wrong: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, work: Callable[[], bool]) -> None:
        try:
            ok = work()
        except DockerRunnerRequestError as error:
            with self.lock:
                if error.retryable:
                    self.retryable += 1
                elif isinstance(error, (NotFound, Conflict)):
                    self.gone += 1
                else:
                    self.wrong.append(f"{type(error).__name__} {error.status_code} {error.code}: {error.message}")
            return
        except RunnerTransportError as error:
            with self.lock:
                self.wrong.append(f"transport: {error}")
            return
        with self.lock:
            if ok:
                self.right += 1
            else:
                self.wrong.append(f"a wrong answer from {work}")


def _sleeper(client: HttpDockerRunnerClient, case: str) -> str:
    labels = {**SESSION_LABELS, "case": case}
    return client.start_container(ContainerOpts(image=TEST_IMAGE, cmd=["sleep", "3600"], labels=labels)).container_id


def _exec_loop(client: HttpDockerRunnerClient, tally: Tally, stop: threading.Event, case: str) -> None:
    box: list[str] = []
    while not stop.is_set():
        if not box:

            def start() -> bool:
                box.append(_sleeper(client, case))
                return True

            tally.record(start)
            continue
        marker = uuid.uuid4().hex[:8]

        def run(cid: str = box[0], token: str = marker) -> bool:
            result = client.exec_run(cid, f"echo {token}", ExecOptions(timeout_ms=10_000))
            return result.stdout == f"{token}\n" and result.exit_code == 0

        before = tally.gone
        tally.record(run)
        if tally.gone > before:
            box.clear()  # the restart took the container: start another


def _run_loop(client: HttpDockerRunnerClient, tally: Tally, stop: threading.Event) -> None:
    while not stop.is_set():

        def run() -> bool:
            result = client.run(TEST_IMAGE, "echo once; echo err >&2", timeout_ms=10_000)
            return (result.exit_code, result.stdout, result.stderr) == (0, "once\n", "err\n")

        tally.record(run)


def _start_remove_loop(client: HttpDockerRunnerClient, tally: Tally, stop: threading.Event, case: str) -> None:
    while not stop.is_set():

        def cycle() -> bool:
            container_id = _sleeper(client, case)
            client.remove_container(container_id, force=True)
            return True

        tally.record(cycle)


def _events_loop(server: RunningServer, filters: str, stop: threading.Event, seen: list[tuple[object, ...]]) -> None:
    """Read events, dropping the connection every few, and resume with Last-Event-ID."""
    last_id: str | None = None
    while not stop.is_set():
        headers = {"last-event-id": last_id} if last_id else {}
        try:
            with signed_stream(server.url, f"/v1/events/sse?filters={filters}", headers=headers) as response:
                if response.status_code != 200:
                    time.sleep(0.2)  # 503 while the engine is away: the client's reconnect would back off too
                    continue
                count = 0
                for line in response.iter_lines():
                    if line.startswith("id:"):
                        last_id = line[3:].strip()
                    elif line.startswith("data:"):
                        payload = json.loads(line[5:])
                        if payload.get("type") == "event":
                            event = payload["event"]
                            seen.append((event["timeNano"], event["Action"], event["Actor"]["ID"]))
                            count += 1
                        if count >= 5 or stop.is_set() or payload.get("type") == "error":
                            break
        except DockerRunnerError:
            time.sleep(0.2)
        except Exception:  # the stream broke under the outage: reconnect, as a client would
            time.sleep(0.2)


def _descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


def _ready(client: HttpDockerRunnerClient) -> bool:
    try:
        return client.ready() == "ready"
    except DockerRunnerError:
        return False


def test_two_engine_restarts_under_load(
    swarm_bed: SwarmBed, node_outage: NodeOutage, caplog: pytest.LogCaptureFixture
) -> None:
    """SIGKILL the engine twice mid-load, start it again: every answer right or typed and retryable,
    no 500, no one-shot container left, and no event delivered twice across the resumes."""
    node = swarm_bed.node(NODE)
    case = f"restart-{uuid.uuid4().hex[:8]}"
    settings = make_settings(docker_host=node.socket, reaper_interval_ms=10_000)
    filters = base64.b64encode(json.dumps({"type": ["container"], "label": [f"case={case}"]}).encode()).decode()
    tally, stop, seen = Tally(), threading.Event(), []
    descriptors_before = _descriptors()
    with (
        caplog.at_level(logging.INFO, logger="docker_runner.requests"),
        running_runner(settings) as server,
        HttpDockerRunnerClient(server.url, TEST_SECRET, max_retries=0, timeout_ms=20_000) as client,
    ):
        workers = [
            threading.Thread(target=_exec_loop, args=(client, tally, stop, case)),
            threading.Thread(target=_exec_loop, args=(client, tally, stop, case)),
            threading.Thread(target=_run_loop, args=(client, tally, stop)),
            threading.Thread(target=_start_remove_loop, args=(client, tally, stop, case)),
            threading.Thread(target=_events_loop, args=(server, filters, stop, seen)),
        ]
        for worker in workers:
            worker.start()
        try:
            for _ in range(RESTARTS):
                wait_for(lambda: tally.right >= 10, timeout=60, what="the load to get going")
                tally.right = 0
                node_outage.kill(NODE)
                time.sleep(OUTAGE_SECONDS)  # the outage itself: the load keeps hitting the runner meanwhile
                node_outage.revive(NODE)
                wait_for(lambda: _ready(client), timeout=60, what="the runner to see the engine back")
            wait_for(lambda: tally.right >= 10, timeout=60, what="the load to go on after the last restart")
        finally:
            stop.set()
            for worker in workers:
                worker.join(timeout=60)
        api = node.api()
        try:
            own = {"label": ["dev.docker-runner.oneshot", f"dev.docker-runner.instance={settings.instance}"]}
            wait_for(
                lambda: not api.containers(all=True, filters=own),
                timeout=60,
                what="every one-shot container to be removed",
            )
            removals = server.runtime.engine.removals
            wait_for(lambda: not removals.pending(), timeout=30, what="the removal queue to empty")
        finally:
            for item in api.containers(all=True, filters={"label": f"case={case}"}):
                with contextlib.suppress(docker.errors.NotFound):  # the runner's removal queue got there first
                    api.remove_container(item["Id"], force=True)
            api.close()
    statuses = [getattr(r, "fields", {}).get("status") for r in caplog.records if r.name == "docker_runner.requests"]
    assert 500 not in statuses, [
        r.getMessage() for r in caplog.records if getattr(r, "fields", {}).get("status") == 500
    ]
    assert tally.wrong == []
    assert tally.retryable > 0  # the outages were seen
    assert len(seen) == len(set(seen)), "an event was delivered twice"
    # the runner is gone: what it held (sockets, the pipes that cancel runs) went with it
    wait_for(lambda: _descriptors() <= descriptors_before + 16, timeout=30, what="the descriptors to be given back")
