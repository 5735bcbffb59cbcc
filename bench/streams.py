"""Streams: SSE event latency, and WebSocket exec throughput through the runner against docker-py.

One run starts a real runner in-process on a free port (as the tests do) and measures:

1. Event latency. A thread reads ``GET /v1/events/sse`` (container events labelled
   ``dev.docker-runner.bench=1``) with ``HttpDockerRunnerClient.events``; the main thread creates,
   starts, kills, waits for and removes N small busybox containers directly with docker-py, one
   after the other. Each received event's latency is ``time.time_ns()`` at reception minus the
   event's ``timeNano`` (same machine, same clock). Every container must yield exactly one
   ``create``, ``start``, ``kill``, ``die`` and ``destroy``: lost, doubled or unexpected events are
   counted and reported. Target: p99 under 50 ms, and none lost or doubled.

2. Exec stdout throughput of ``head -c 209715200 /dev/zero`` (200 MiB), three ways:

   - runner: ``client.open_exec`` (the client's WebSocket offers permessage-deflate; the runner
     declines it unless ``DOCKER_RUNNER_WS_COMPRESSION=true``, off by default and here, so frames go
     uncompressed), summing ``len(output.data)`` until the exit frame;
   - runner-raw: the same WebSocket opened by hand with ``compression=None`` (upgrade signed here),
     decoding the same JSON frames ``{"type":"stdout","data":"<base64>"}`` until ``{"type":"exit"}``;
   - direct: docker-py ``exec_create`` + ``exec_start(socket=True)``, reading the raw socket until
     EOF and counting payload bytes only (the stream is multiplexed: 8-byte headers are parsed and
     not counted; bytes the HTTP layer buffered past the upgrade are taken first).

   The clock runs from the started exec (session ready / ``exec_start`` returned) to the end of
   its output; every way must deliver exactly the bytes asked for, and exit 0. The ways run in
   alternating order (ABC, CBA, ...), ``--rounds`` times each; medians are reported in MB/s
   (10^6 bytes per second), with this process's CPU time per payload byte (the runner runs
   in-process, so for the runner ways that is runner plus client; for direct, the reader only),
   which is steadier than MB/s on a loaded machine: the load average is printed at both ends.
   Target: runner (the client's way) at least 0.5 of direct.

    .venv/bin/python bench/streams.py [--events 100] [--rounds 3] [--json PATH]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import statistics
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import docker
from tests.support.server import TEST_SECRET, make_settings, running_runner
from websockets.sync.client import ClientConnection, connect

from docker_runner.containers.spec import MANAGED_LABEL
from docker_runner.engine.sockets import raw_socket, take_buffered
from docker_runner_client import HttpDockerRunnerClient
from docker_runner_client._signing import sign_headers

IMAGE = "runner-test/busybox:latest"
BENCH_LABEL = "dev.docker-runner.bench"
ROLE_LABEL = "dev.docker-runner.bench.role"  # probe (subscription is live), measured, sentinel (stop)
EXPECTED_ACTIONS = ("create", "start", "kill", "die", "destroy")
EVENT_P99_TARGET_MS = 50.0
STREAM_BYTES = 200 * 1024 * 1024
WARMUP_BYTES = 1024 * 1024
RATIO_TARGET = 0.5
READ_BYTES = 1024 * 1024
HEADER_BYTES = 8
WS_PATH = "/v1/exec/interactive/ws"


class BenchError(RuntimeError):
    """A stream gave a wrong answer: the figures would measure failures."""


# --- containers ------------------------------------------------------------------------------


class Containers:
    """Creates labelled busybox containers and removes every one of them at the end, whatever happens."""

    def __init__(self, api: docker.APIClient) -> None:
        self.api = api
        self._ids: list[str] = []

    def create(self, role: str, init: bool = False) -> str:
        container = self.api.create_container(
            IMAGE,
            command=["sleep", "3600"],
            labels={BENCH_LABEL: "1", MANAGED_LABEL: "true", ROLE_LABEL: role},
            host_config=self.api.create_host_config(init=init, network_mode="none"),
        )
        self._ids.append(str(container["Id"]))
        return self._ids[-1]

    def remove(self, container_id: str) -> None:
        self.api.remove_container(container_id, force=True, v=True)
        self._ids.remove(container_id)

    def remove_all(self) -> None:
        for container_id in list(self._ids):
            try:
                self.remove(container_id)
            except docker.errors.NotFound:
                self._ids.remove(container_id)


# --- 1. event latency -------------------------------------------------------------------------


@dataclass
class EventFigures:
    count: int
    expected: int
    lost: int
    doubled: int
    unexpected: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    target_met: bool


class EventListener(threading.Thread):
    """Reads the runner's SSE events until the sentinel container's first event."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self._client = HttpDockerRunnerClient(url, TEST_SECRET)
        self.received: list[tuple[str, str, int]] = []  # actor, action, latency in ns
        self.ready = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        filters = {"type": ["container"], "label": [f"{BENCH_LABEL}=1"]}
        try:
            for event in self._client.events(filters=filters):
                received_ns = time.time_ns()
                role = event.attributes.get(ROLE_LABEL, "")
                if role == "sentinel":
                    return
                if role == "probe":
                    self.ready.set()
                else:
                    self.received.append((event.actor_id, event.action, received_ns - event.time_nano))
        except BaseException as exc:
            self.error = exc
        finally:
            self._client.close()


def wait_subscribed(listener: EventListener, containers: Containers) -> None:
    """Create probe containers until the listener sees one: only then is the subscription live."""
    for _ in range(40):
        containers.remove(containers.create("probe"))
        if listener.ready.wait(0.5):
            return
        if listener.error is not None:
            raise BenchError(f"the event stream failed: {listener.error!r}")
    raise BenchError("the event stream never delivered a probe event")


def container_lifecycle(containers: Containers) -> str:
    """create, start, kill (SIGKILL), wait, remove: one event of each expected action."""
    container_id = containers.create("measured")
    containers.api.start(container_id)
    containers.api.kill(container_id)
    containers.api.wait(container_id)
    containers.remove(container_id)
    return container_id


def check_events(received: list[tuple[str, str, int]], actors: list[str]) -> tuple[int, int, int]:
    """Lost, doubled and unexpected events, given the actors that each emit every expected action once."""
    wanted = set(actors)
    counts = Counter((actor, action) for actor, action, _ in received if actor in wanted)
    lost = sum(1 for actor in actors for action in EXPECTED_ACTIONS if counts[(actor, action)] == 0)
    doubled = sum(count - 1 for (_, action), count in counts.items() if action in EXPECTED_ACTIONS and count > 1)
    unexpected = sum(count for (_, action), count in counts.items() if action not in EXPECTED_ACTIONS)
    unexpected += sum(1 for actor, _, _ in received if actor not in wanted)
    return lost, doubled, unexpected


def measure_events(url: str, containers: Containers, n: int) -> EventFigures:
    listener = EventListener(url)
    listener.start()
    wait_subscribed(listener, containers)
    actors = [container_lifecycle(containers) for _ in range(n)]
    containers.remove(containers.create("sentinel"))
    listener.join(timeout=30)
    if listener.is_alive() or listener.error is not None:
        raise BenchError(f"the event stream did not reach the sentinel: {listener.error!r}")
    lost, doubled, unexpected = check_events(listener.received, actors)
    measured = set(actors)
    latencies = [latency / 1e6 for actor, _, latency in listener.received if actor in measured]
    cuts = statistics.quantiles(latencies, n=100, method="inclusive")
    expected = n * len(EXPECTED_ACTIONS)
    met = cuts[98] < EVENT_P99_TARGET_MS and lost == doubled == unexpected == 0
    return EventFigures(len(latencies), expected, lost, doubled, unexpected, cuts[49], cuts[98], max(latencies), met)


# --- 2. exec stdout throughput ----------------------------------------------------------------


@dataclass
class Transfer:
    """One exec's output: payload bytes, the streaming time and the time including exec setup."""

    payload: int
    stream_seconds: float
    total_seconds: float
    extensions: str = ""  # the negotiated WebSocket extensions, for the WebSocket ways


@dataclass
class WayFigures:
    way: str
    runs_mb_s: list[float] = field(default_factory=list)
    totals_mb_s: list[float] = field(default_factory=list)
    cpu_ns_per_byte: list[float] = field(default_factory=list)  # this process: the runner and the reader
    extensions: str = ""
    median_mb_s: float = 0.0
    median_total_mb_s: float = 0.0
    median_cpu_ns_per_byte: float = 0.0


def command_for(size: int) -> str:
    return f"head -c {size} /dev/zero"


def negotiated(connection: ClientConnection) -> str:
    response = connection.response
    return "" if response is None else str(response.headers.get("Sec-WebSocket-Extensions") or "none")


def through_client(client: HttpDockerRunnerClient, container_id: str, size: int) -> Transfer:
    started = time.perf_counter()
    with client.open_exec(container_id, command_for(size)) as session:
        streaming = time.perf_counter()
        payload = sum(len(output.data) for output in session)
        ended = time.perf_counter()
        if session.exit_code != 0:
            raise BenchError(f"runner exec exited {session.exit_code}")
        extensions = negotiated(session._connection)
    return Transfer(payload, ended - streaming, ended - started, extensions)


def signed_upgrade(base_url: str, container_id: str, command: str) -> tuple[str, dict[str, str]]:
    """The WebSocket URL of an interactive exec and the headers that sign its upgrade."""
    query = {"containerId": container_id, "command": command, "tty": "false", "demux": "false"}
    target = f"{WS_PATH}?{urlencode(query, quote_via=quote)}"
    timestamp, nonce = str(time.time_ns() // 1_000_000), str(uuid.uuid4())
    headers = sign_headers(TEST_SECRET, "GET", target, b"", timestamp, nonce)
    return base_url.replace("http://", "ws://", 1) + target, headers


def read_frames(connection: ClientConnection) -> int:
    """Payload bytes of the stdout and stderr frames, until the exit frame (which must say 0)."""
    payload = 0
    while True:
        frame = json.loads(connection.recv())
        kind = frame.get("type")
        if kind in ("stdout", "stderr"):
            payload += len(base64.b64decode(frame["data"]))
        elif kind == "exit":
            if frame.get("exitCode") != 0:
                raise BenchError(f"raw WebSocket exec exited {frame.get('exitCode')}")
            return payload
        elif kind == "error":
            raise BenchError(f"raw WebSocket exec failed: {frame}")


def through_raw_websocket(base_url: str, container_id: str, size: int, compression: str | None = None) -> Transfer:
    url, headers = signed_upgrade(base_url, container_id, command_for(size))
    started = time.perf_counter()
    with connect(url, additional_headers=headers, compression=compression, legacy=True) as connection:
        ready = json.loads(connection.recv())
        if ready.get("type") != "ready":
            raise BenchError(f"raw WebSocket exec did not start: {ready}")
        streaming = time.perf_counter()
        payload = read_frames(connection)
        ended = time.perf_counter()
        extensions = negotiated(connection)
    return Transfer(payload, ended - streaming, ended - started, extensions)


class PayloadCounter:
    """Counts the payload bytes of Docker's multiplexed stream without copying them."""

    def __init__(self) -> None:
        self.payload = 0
        self._header = bytearray()
        self._remaining = 0  # payload bytes of the current frame still to come

    def feed(self, data: memoryview) -> None:
        position, size = 0, len(data)
        while position < size:
            if self._remaining:
                taken = min(self._remaining, size - position)
                self.payload += taken
                self._remaining -= taken
                position += taken
                continue
            needed = HEADER_BYTES - len(self._header)
            self._header += data[position : position + needed]
            position += needed
            if len(self._header) == HEADER_BYTES:
                self._remaining = int.from_bytes(self._header[4:8], "big")
                self._header.clear()


def direct(api: docker.APIClient, container_id: str, size: int) -> Transfer:
    started = time.perf_counter()
    exec_id = api.exec_create(container_id, ["sh", "-c", command_for(size)])["Id"]
    stream = api.exec_start(exec_id, socket=True)
    streaming = time.perf_counter()
    raw = raw_socket(stream)
    counter, buffer = PayloadCounter(), bytearray(READ_BYTES)
    try:
        counter.feed(memoryview(take_buffered(stream, raw)))
        raw.setblocking(True)
        while read := raw.recv_into(buffer):
            counter.feed(memoryview(buffer)[:read])
        ended = time.perf_counter()
    finally:
        stream.close()
        raw.close()
    exit_code = api.exec_inspect(exec_id)["ExitCode"]
    if exit_code != 0:
        raise BenchError(f"direct exec exited {exit_code}")
    return Transfer(counter.payload, ended - streaming, ended - started)


Way = Callable[[int], Transfer]


def throughput_ways(base_url: str, client: HttpDockerRunnerClient, api: docker.APIClient, cid: str) -> dict[str, Way]:
    return {
        "runner": lambda size: through_client(client, cid, size),
        "runner-raw": lambda size: through_raw_websocket(base_url, cid, size, compression=None),
        "direct": lambda size: direct(api, cid, size),
    }


def measure_throughput(ways: dict[str, Way], rounds: int, size: int) -> dict[str, WayFigures]:
    """Each way ``rounds`` times in alternating order, after a small warm-up of each."""
    figures = {name: WayFigures(name) for name in ways}
    for way in ways.values():
        way(WARMUP_BYTES)
    order = list(ways)
    for _ in range(rounds):
        for name in order:
            cpu_started = time.process_time()
            transfer = ways[name](size)
            cpu_seconds = time.process_time() - cpu_started
            if transfer.payload != size:
                raise BenchError(f"{name}: {transfer.payload} bytes received, {size} expected")
            figures[name].runs_mb_s.append(size / transfer.stream_seconds / 1e6)
            figures[name].totals_mb_s.append(size / transfer.total_seconds / 1e6)
            figures[name].cpu_ns_per_byte.append(cpu_seconds / size * 1e9)
            figures[name].extensions = transfer.extensions or "-"
        order.reverse()
    for row in figures.values():
        row.median_mb_s = statistics.median(row.runs_mb_s)
        row.median_total_mb_s = statistics.median(row.totals_mb_s)
        row.median_cpu_ns_per_byte = statistics.median(row.cpu_ns_per_byte)
    return figures


# --- report -----------------------------------------------------------------------------------


def report_events(figures: EventFigures) -> None:
    print(f"1. SSE event latency (receive time - timeNano), {figures.expected // len(EXPECTED_ACTIONS)} containers")
    header = ("events", 7), ("expected", 9), ("lost", 5), ("doubled", 8), ("unexpected", 11)
    columns = (*header, ("p50 ms", 8), ("p99 ms", 8), ("max ms", 8))
    print(" ".join(f"{name:>{width}}" for name, width in columns))
    print(
        f"{figures.count:>7} {figures.expected:>9} {figures.lost:>5} {figures.doubled:>8} {figures.unexpected:>11} "
        f"{figures.p50_ms:>8.2f} {figures.p99_ms:>8.2f} {figures.max_ms:>8.2f}"
    )
    complete = figures.lost == figures.doubled == figures.unexpected == 0
    print(f"each container: exactly one of {', '.join(EXPECTED_ACTIONS)}: {'OK' if complete else 'FAILED'}")
    verdict = "MET" if figures.target_met else "MISSED"
    print(f"target (p99 < {EVENT_P99_TARGET_MS:.0f} ms, none lost or doubled): {verdict}\n")


def report_throughput(figures: dict[str, WayFigures], size: int) -> dict[str, float | bool]:
    print(f"2. exec stdout throughput, {size} bytes of /dev/zero, MB/s = 10^6 bytes/s (median of runs)")
    print("   runner: client.open_exec, WebSocket compression as negotiated; runner-raw: same route, compression=None;")
    print("   direct: docker-py raw socket, payload bytes only (8-byte multiplexing headers not counted);")
    print("   cpu ns/B: CPU time of this process (in-process runner + reading client) per payload byte")
    print(f"{'way':<11} {'runs MB/s':<26} {'median':>8} {'incl. setup':>12} {'cpu ns/B':>9}  ws extensions")
    for row in figures.values():
        runs = " ".join(f"{value:7.1f}" for value in row.runs_mb_s)
        print(
            f"{row.way:<11} {runs:<26} {row.median_mb_s:>8.1f} {row.median_total_mb_s:>12.1f} "
            f"{row.median_cpu_ns_per_byte:>9.1f}  {row.extensions}"
        )
    direct_mb_s = figures["direct"].median_mb_s
    ratios: dict[str, float | bool] = {
        "runner/direct": figures["runner"].median_mb_s / direct_mb_s,
        "runner-raw/direct": figures["runner-raw"].median_mb_s / direct_mb_s,
        "runner-raw/runner": figures["runner-raw"].median_mb_s / figures["runner"].median_mb_s,
    }
    ratios["target_met"] = ratios["runner/direct"] >= RATIO_TARGET
    print(
        f"runner/direct x{ratios['runner/direct']:.2f}  runner-raw/direct x{ratios['runner-raw/direct']:.2f}  "
        f"runner-raw/runner x{ratios['runner-raw/runner']:.2f}"
    )
    verdict = "MET" if ratios["target_met"] else "MISSED"
    print(f"target (runner at least {RATIO_TARGET} of direct): {verdict}")
    return ratios


# --- main -------------------------------------------------------------------------------------


@contextmanager
def stream_container(containers: Containers) -> Iterator[str]:
    """The ``sleep 3600`` container (with init) the throughput execs run in."""
    container_id = containers.create("stream", init=True)
    containers.api.start(container_id)
    try:
        yield container_id
    finally:
        containers.remove(container_id)


def bench(n: int, rounds: int, size: int) -> dict[str, Any]:
    api = docker.APIClient(version="auto")
    containers = Containers(api)
    try:
        with running_runner(make_settings()) as server:
            events = measure_events(server.url, containers, n)
            report_events(events)
            with stream_container(containers) as cid, HttpDockerRunnerClient(server.url, TEST_SECRET) as client:
                throughput = measure_throughput(throughput_ways(server.url, client, api, cid), rounds, size)
        ratios = report_throughput(throughput, size)
    finally:
        containers.remove_all()
        api.close()
    return {
        "events": asdict(events),
        "throughput": {name: asdict(row) for name, row in throughput.items()},
        "ratios": ratios,
        "bytes": size,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100, help="containers whose events are timed (default 100)")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each throughput way (default 3)")
    parser.add_argument("--bytes", type=int, default=STREAM_BYTES, help="bytes each exec writes (default 200 MiB)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file as JSON")
    args = parser.parse_args()
    if args.events < 2 or args.rounds < 1 or args.bytes < 1:
        parser.error("--events must be at least 2, --rounds and --bytes at least 1")
    print("load average at start: {:.2f} {:.2f} {:.2f}\n".format(*os.getloadavg()))
    document = bench(args.events, args.rounds, args.bytes)
    print("load average at end: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    if args.json is not None:
        args.json.write_text(json.dumps(document, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
