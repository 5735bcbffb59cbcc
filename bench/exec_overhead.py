"""Exec overhead: the same ``echo hello`` through the runner and directly through docker-py.

One run starts a real runner in-process on a free port (as the tests do) and one busybox
container, then times ``["echo", "hello"]`` N times sequentially and N times from a pool of
8 threads, two ways:

- runner: ``HttpDockerRunnerClient.exec_run`` (signed HTTP -> runner -> docker-py -> engine);
- direct: ``exec_create`` + ``exec_start(demux=True)`` + ``exec_inspect`` with docker-py.

The two ways run in alternating blocks (ABBA order) after a warm-up, so machine drift does
not favour either side, and every exec's output is checked (stdout ``hello``, exit 0).

Target: the runner's p50 latency within 10% of direct docker-py's, in each mode.

    .venv/bin/python bench/exec_overhead.py [--n 200] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import docker
from tests.support.server import TEST_SECRET, make_settings, running_runner

from docker_runner.containers.spec import MANAGED_LABEL
from docker_runner_client import HttpDockerRunnerClient

IMAGE = os.environ.get("RUNNER_TEST_IMAGE", "runner-test/busybox:latest")
BENCH_LABEL = "dev.docker-runner.bench"
COMMAND = ["echo", "hello"]
EXPECTED_STDOUT = "hello\n"
PARALLEL = 8
WARMUP = 20
BLOCK = 20  # execs per block of one way before switching to the other
TARGET_RATIO = 1.10

Exec = Callable[[], float]  # runs one exec, checks it, returns its latency in seconds


class BenchError(RuntimeError):
    """An exec gave a wrong answer: the figures would measure failures."""


@dataclass
class Figures:
    mode: str
    way: str
    count: int
    p50_ms: float
    p95_ms: float
    mean_ms: float


def percentiles(samples: list[float]) -> tuple[float, float]:
    """p50 and p95 of ``samples`` (seconds), in milliseconds."""
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return cuts[49] * 1000, cuts[94] * 1000


@contextmanager
def bench_container(api: docker.APIClient) -> Iterator[str]:
    """One ``sleep 3600`` busybox container (with init), removed whatever happens.

    It carries the runner's managed label: by default the runner answers 404 for containers it did
    not create. It has no TTL label, so no reaper touches it."""
    container = api.create_container(
        IMAGE,
        command=["sleep", "3600"],
        labels={BENCH_LABEL: "1", MANAGED_LABEL: "true"},
        host_config=api.create_host_config(init=True),
    )
    container_id = str(container["Id"])
    try:
        api.start(container_id)
        yield container_id
    finally:
        api.remove_container(container_id, force=True, v=True)


class RunnerExec:
    """One exec through the runner's sync client; one client per calling thread, all closed at the end."""

    def __init__(self, url: str, container_id: str) -> None:
        self._url = url
        self._container_id = container_id
        self._local = threading.local()
        self._clients: list[HttpDockerRunnerClient] = []
        self._lock = threading.Lock()

    def _client(self) -> HttpDockerRunnerClient:
        client: HttpDockerRunnerClient | None = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = HttpDockerRunnerClient(self._url, TEST_SECRET)
            with self._lock:
                self._clients.append(client)
        return client

    def __call__(self) -> float:
        client = self._client()
        started = time.perf_counter()
        result = client.exec_run(self._container_id, COMMAND)
        elapsed = time.perf_counter() - started
        if result.stdout != EXPECTED_STDOUT or result.stderr or result.exit_code != 0:
            raise BenchError(f"runner exec: stdout={result.stdout!r} stderr={result.stderr!r} exit={result.exit_code}")
        return elapsed

    def close(self) -> None:
        for client in self._clients:
            client.close()


def direct_exec(api: docker.APIClient, container_id: str) -> Exec:
    """One exec as a direct docker-py caller does it: create, start (demuxed), inspect."""

    def run() -> float:
        started = time.perf_counter()
        exec_id = api.exec_create(container_id, COMMAND)["Id"]
        stdout, stderr = api.exec_start(exec_id, demux=True)
        exit_code = api.exec_inspect(exec_id)["ExitCode"]
        elapsed = time.perf_counter() - started
        if stdout != EXPECTED_STDOUT.encode() or stderr or exit_code != 0:
            raise BenchError(f"direct exec: stdout={stdout!r} stderr={stderr!r} exit={exit_code}")
        return elapsed

    return run


def run_block(run: Exec, count: int, pool: ThreadPoolExecutor | None) -> list[float]:
    """``count`` execs, one after the other or spread over ``pool``; their latencies."""
    if pool is None:
        return [run() for _ in range(count)]
    futures = [pool.submit(run) for _ in range(count)]
    return [future.result() for future in futures]


def measure(ways: dict[str, Exec], n: int, pool: ThreadPoolExecutor | None) -> dict[str, list[float]]:
    """N latencies per way, in alternating blocks: A B, then B A, and so on."""
    samples: dict[str, list[float]] = {name: [] for name in ways}
    order = list(ways)
    block = BLOCK if pool is None else max(BLOCK, 2 * PARALLEL)
    while any(len(values) < n for values in samples.values()):
        for name in order:
            count = min(block, n - len(samples[name]))
            if count > 0:
                samples[name] += run_block(ways[name], count, pool)
        order.reverse()
    return samples


def warm_up(ways: dict[str, Exec], pool: ThreadPoolExecutor) -> None:
    """Open connections and threads on both sides before anything is timed."""
    for run in ways.values():
        run_block(run, WARMUP, None)
        run_block(run, 2 * PARALLEL, pool)


def summarise(mode: str, samples: dict[str, list[float]]) -> list[Figures]:
    figures = []
    for way, values in samples.items():
        p50, p95 = percentiles(values)
        figures.append(Figures(mode, way, len(values), p50, p95, statistics.fmean(values) * 1000))
    return figures


def report(figures: list[Figures]) -> dict[str, dict[str, float | bool]]:
    """Print the table and the verdict per mode; return the ratios."""
    print(f"{'mode':<12} {'way':<8} {'n':>5} {'p50 ms':>9} {'p95 ms':>9} {'mean ms':>9}")
    for row in figures:
        print(f"{row.mode:<12} {row.way:<8} {row.count:>5} {row.p50_ms:>9.2f} {row.p95_ms:>9.2f} {row.mean_ms:>9.2f}")
    print()
    verdicts: dict[str, dict[str, float | bool]] = {}
    for mode in dict.fromkeys(row.mode for row in figures):
        by_way = {row.way: row for row in figures if row.mode == mode}
        runner, direct = by_way["runner"], by_way["direct"]
        p50_ratio, p95_ratio = runner.p50_ms / direct.p50_ms, runner.p95_ms / direct.p95_ms
        met = p50_ratio <= TARGET_RATIO
        verdicts[mode] = {"p50_ratio": p50_ratio, "p95_ratio": p95_ratio, "target_met": met}
        print(
            f"{mode:<12} runner/direct p50 x{p50_ratio:.2f}  p95 x{p95_ratio:.2f}  "
            f"target (p50 within 10%): {'MET' if met else 'MISSED'}"
        )
    return verdicts


def bench(n: int) -> tuple[list[Figures], dict[str, dict[str, float | bool]]]:
    api = docker.APIClient(version="auto", max_pool_size=2 * PARALLEL)
    try:
        with running_runner(make_settings()) as server, bench_container(api) as container_id:
            through_runner = RunnerExec(server.url, container_id)
            ways = {"runner": through_runner, "direct": direct_exec(api, container_id)}
            try:
                with ThreadPoolExecutor(PARALLEL) as pool:
                    warm_up(ways, pool)
                    figures = summarise("sequential", measure(ways, n, None))
                    figures += summarise(f"parallel-{PARALLEL}", measure(ways, n, pool))
            finally:
                through_runner.close()
    finally:
        api.close()
    return figures, report(figures)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="execs per way and per mode (default 200)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file as JSON")
    args = parser.parse_args()
    if args.n < 2:
        parser.error("--n must be at least 2")
    figures, verdicts = bench(args.n)
    if args.json is not None:
        document = {"n": args.n, "parallel": PARALLEL, "figures": [asdict(row) for row in figures], "ratios": verdicts}
        args.json.write_text(json.dumps(document, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
