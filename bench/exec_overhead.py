"""Exec overhead: the same ``echo hello`` three ways, in one run, alternating.

One run starts a real runner in-process on a free port (as the tests do) and two busybox
containers through it, one with ``fastExec`` on and one with it off, then times
``["echo", "hello"]``:

- fast: ``HttpDockerRunnerClient.exec_run`` into the fastExec container (the resident command
  channel; every answer must say ``path: "channel"``);
- exec: the same call into the other container (a docker exec per command, ``path: "exec"``);
- direct: ``exec_create`` + ``exec_start(demux=True)`` + ``exec_inspect`` with docker-py.

The ways run in alternating blocks (A B C, then C B A, ...) after a warm-up, so machine drift does
not favour any, and every answer is checked (stdout ``hello``, exit 0). Then:

- sequential: p50 per way; targets: fast <= 0.2x direct, exec within 5% of direct;
- parallel: 8 at once in one container, commands per second per way; target: fast >= 4x direct;
- fan-out: 32 fastExec containers x 4 commands at once each, every command appending its token to a
  file of its container and printing it: 0 lost, doubled or mixed;
- the runner's RSS (the process's: the runner runs in it, with the bench's clients) and the
  channels open.

    .venv/bin/python bench/exec_overhead.py [--n 200] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import docker
import httpx
from tests.support.docker_env import TEST_IMAGE
from tests.support.server import TEST_SECRET, make_settings, running_runner

from docker_runner_client import ContainerOpts, HttpDockerRunnerClient

BENCH_LABEL = "dev.docker-runner.bench"
COMMAND = ["echo", "hello"]
EXPECTED_STDOUT = "hello\n"
PARALLEL = 8
WARMUP = 20
BLOCK = 20  # execs per block of one way before switching to the next
FAN_CONTAINERS = 32
FAN_PER_CONTAINER = 4
SEQUENTIAL_FAST_TARGET = 0.2  # fast p50 / direct p50, at most
SEQUENTIAL_EXEC_TARGET = 1.05  # exec p50 / direct p50, at most
PARALLEL_FAST_TARGET = 4.0  # fast commands/s / direct commands/s, at least

Exec = Callable[[], float]  # runs one exec, checks it, returns its latency in seconds


class BenchError(RuntimeError):
    """An exec gave a wrong answer: the figures would measure failures."""


@dataclass
class Way:
    run: Exec
    wrong: list[str] = field(default_factory=list)  # wrong answers (the direct way's are counted, not fatal)


def percentile(samples: list[float], cut: int) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[cut - 1] * 1000


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def bench_opts(fast_exec: bool) -> ContainerOpts:
    return ContainerOpts(
        image=TEST_IMAGE, cmd=["sleep", "3600"], labels={BENCH_LABEL: "1"}, fast_exec=fast_exec, auto_remove=True
    )


@contextmanager
def started(client: HttpDockerRunnerClient, fast_exec: bool, count: int = 1) -> Iterator[list[str]]:
    """``count`` sleeper containers started through the runner, removed whatever happens."""
    ids: list[str] = []
    try:
        with ThreadPoolExecutor(8) as pool:
            futures = [pool.submit(client.start_container, bench_opts(fast_exec)) for _ in range(count)]
            for future in futures:
                if future.exception() is None:
                    ids.append(future.result().container_id)
            for future in futures:
                future.result()  # the first failure, once every started container is known
        yield ids
    finally:
        for container_id in ids:
            client.remove_container(container_id, force=True)


class RunnerExec:
    """One exec through the runner's sync client (one client per calling thread), checking its path."""

    def __init__(self, url: str, container_id: str, path: str) -> None:
        self._url = url
        self._container_id = container_id
        self._path = path
        self._local = threading.local()
        self._clients: list[HttpDockerRunnerClient] = []
        self._lock = threading.Lock()

    def client(self) -> HttpDockerRunnerClient:
        client: HttpDockerRunnerClient | None = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = HttpDockerRunnerClient(self._url, TEST_SECRET, max_retries=0)
            with self._lock:
                self._clients.append(client)
        return client

    def __call__(self) -> float:
        client = self.client()
        began = time.perf_counter()
        result = client.exec_run(self._container_id, COMMAND)
        elapsed = time.perf_counter() - began
        answer = (result.stdout, result.stderr, result.exit_code, result.path)
        if answer != (EXPECTED_STDOUT, "", 0, self._path):
            raise BenchError(f"runner exec ({self._path}): {answer!r}")
        return elapsed

    def close(self) -> None:
        for client in self._clients:
            client.close()


def direct_exec(api: docker.APIClient, container_id: str, wrong: list[str]) -> Exec:
    """One exec as a direct docker-py caller does it: create, start (demuxed), inspect. A wrong
    answer is counted (the engine sometimes loses a short exec's output under parallel load)."""

    def run() -> float:
        began = time.perf_counter()
        exec_id = api.exec_create(container_id, COMMAND)["Id"]
        stdout, stderr = api.exec_start(exec_id, demux=True)
        exit_code = api.exec_inspect(exec_id)["ExitCode"]
        elapsed = time.perf_counter() - began
        if stdout != EXPECTED_STDOUT.encode() or stderr or exit_code != 0:
            wrong.append(f"stdout={stdout!r} stderr={stderr!r} exit={exit_code}")
        return elapsed

    return run


def sequential(ways: dict[str, Way], n: int) -> dict[str, list[float]]:
    """N latencies per way, one after the other, in alternating blocks."""
    samples: dict[str, list[float]] = {name: [] for name in ways}
    order = list(ways)
    while any(len(values) < n for values in samples.values()):
        for name in order:
            count = min(BLOCK, n - len(samples[name]))
            samples[name] += [ways[name].run() for _ in range(count)]
        order.reverse()
    return samples


def parallel(ways: dict[str, Way], n: int, pool: ThreadPoolExecutor) -> dict[str, float]:
    """Commands per second per way, ``PARALLEL`` at once, over N commands in alternating blocks."""
    elapsed = dict.fromkeys(ways, 0.0)
    done = dict.fromkeys(ways, 0)
    order = list(ways)
    block = max(BLOCK, 4 * PARALLEL)
    while any(count < n for count in done.values()):
        for name in order:
            count = min(block, n - done[name])
            if count <= 0:
                continue
            began = time.perf_counter()
            for future in [pool.submit(ways[name].run) for _ in range(count)]:
                future.result()
            elapsed[name] += time.perf_counter() - began
            done[name] += count
        order.reverse()
    return {name: done[name] / elapsed[name] for name in ways}


def fan_out(url: str, client: HttpDockerRunnerClient) -> dict[str, Any]:
    """32 containers x 4 commands at once: every command's token printed once, appended once."""
    with started(client, True, FAN_CONTAINERS) as ids:
        work = [(container_id, uuid.uuid4().hex) for container_id in ids for _ in range(FAN_PER_CONTAINER)]
        runner = RunnerExec(url, "", "channel")
        lost: list[str] = []
        mixed: list[str] = []
        paths: dict[str, int] = {}

        def one(item: tuple[str, str]) -> None:
            container_id, token = item
            try:
                result = runner.client().exec_run(container_id, f"echo {token} >> /tmp/tokens; echo {token}")
            except Exception as error:
                lost.append(f"{token}: {error}")
                return
            paths[str(result.path)] = paths.get(str(result.path), 0) + 1
            if (result.stdout, result.stderr, result.exit_code) != (f"{token}\n", "", 0):
                mixed.append(f"{token}: {result.stdout!r} {result.stderr!r} {result.exit_code}")

        began = time.perf_counter()
        with ThreadPoolExecutor(FAN_CONTAINERS * FAN_PER_CONTAINER) as pool:
            list(pool.map(one, work))
        seconds = time.perf_counter() - began
        doubled = 0
        for container_id in ids:
            written = runner.client().exec_run(container_id, ["cat", "/tmp/tokens"]).stdout.split()
            doubled += len(written) - len(set(written))
            expected = {token for owner, token in work if owner == container_id}
            lost += [f"{token}: not written" for token in expected - set(written)]
        metrics = httpx.get(url + "/metrics").text
        channels_open = float(metrics.split("\ndocker_runner_exec_channels_open ")[1].split()[0])
        figures = {
            "commands": len(work),
            "seconds": seconds,
            "lost": len(lost),
            "doubled": doubled,
            "mixed": len(mixed),
            "paths": paths,
            "channels_open": channels_open,
            "rss_mib": rss_mib(),
            "examples": (lost + mixed)[:3],
        }
        runner.close()
    return figures


def verdict(met: bool) -> str:
    return "MET" if met else "MISSED"


def report(seq: dict[str, list[float]], rates: dict[str, float], fan: dict[str, Any], wrong: int) -> dict[str, Any]:
    p50 = {name: percentile(values, 50) for name, values in seq.items()}
    p95 = {name: percentile(values, 95) for name, values in seq.items()}
    print(f"{'sequential':<12} {'way':<8} {'n':>5} {'p50 ms':>9} {'p95 ms':>9} {'x direct':>9}")
    for name, values in seq.items():
        ratio = p50[name] / p50["direct"]
        print(f"{'':<12} {name:<8} {len(values):>5} {p50[name]:>9.2f} {p95[name]:>9.2f} {ratio:>9.2f}")
    fast_ratio, exec_ratio = p50["fast"] / p50["direct"], p50["exec"] / p50["direct"]
    print(
        f"  fast p50 x{fast_ratio:.2f} of direct  target <= x{SEQUENTIAL_FAST_TARGET}: "
        + verdict(fast_ratio <= SEQUENTIAL_FAST_TARGET)
    )
    print(
        f"  exec p50 x{exec_ratio:.2f} of direct  target <= x{SEQUENTIAL_EXEC_TARGET}: "
        + verdict(exec_ratio <= SEQUENTIAL_EXEC_TARGET)
    )
    print()
    print(f"parallel-{PARALLEL} in one container, commands/s:")
    for name, rate in rates.items():
        print(f"  {name:<8} {rate:>9.1f}/s  x{rate / rates['direct']:.2f} of direct")
    rate_ratio = rates["fast"] / rates["direct"]
    print(
        f"  fast x{rate_ratio:.2f} of direct  target >= x{PARALLEL_FAST_TARGET}: "
        + verdict(rate_ratio >= PARALLEL_FAST_TARGET)
    )
    print(f"  direct docker-py wrong answers (engine lost the output), counted not timed out: {wrong}")
    print()
    clean = fan["lost"] == 0 and fan["doubled"] == 0 and fan["mixed"] == 0
    print(
        f"fan-out {FAN_CONTAINERS} containers x {FAN_PER_CONTAINER} at once: {fan['commands']} commands in "
        f"{fan['seconds']:.2f} s, paths {fan['paths']}; lost {fan['lost']}, doubled {fan['doubled']}, "
        f"mixed {fan['mixed']}  target 0/0/0: {verdict(clean)}"
    )
    for example in fan["examples"]:
        print(f"  {example}")
    print(
        f"runner RSS (in-process, with the bench's clients) {fan['rss_mib']:.1f} MiB; "
        f"channels open {fan['channels_open']:.0f}"
    )
    return {
        "sequential_p50_ms": p50,
        "sequential_p95_ms": p95,
        "fast_over_direct_p50": fast_ratio,
        "exec_over_direct_p50": exec_ratio,
        "parallel_commands_per_second": rates,
        "fast_over_direct_rate": rate_ratio,
        "direct_wrong_answers": wrong,
        "fan_out": fan,
    }


def bench(n: int) -> dict[str, Any]:
    api = docker.APIClient(version="auto", max_pool_size=2 * PARALLEL)
    try:
        with ExitStack() as stack:
            server = stack.enter_context(running_runner(make_settings(fast_exec_channels=PARALLEL)))
            client = stack.enter_context(HttpDockerRunnerClient(server.url, TEST_SECRET))
            (fast_id,) = stack.enter_context(started(client, True))
            (exec_id,) = stack.enter_context(started(client, False))
            fast, through_exec = RunnerExec(server.url, fast_id, "channel"), RunnerExec(server.url, exec_id, "exec")
            stack.callback(fast.close)
            stack.callback(through_exec.close)
            direct_wrong: list[str] = []
            ways = {
                "fast": Way(fast),
                "exec": Way(through_exec),
                "direct": Way(direct_exec(api, exec_id, direct_wrong), direct_wrong),
            }
            pool = stack.enter_context(ThreadPoolExecutor(PARALLEL))
            for way in ways.values():  # open connections, threads and channels before anything is timed
                for _ in range(WARMUP):
                    way.run()
                for future in [pool.submit(way.run) for _ in range(2 * PARALLEL)]:
                    future.result()
            seq = sequential(ways, n)
            rates = parallel(ways, n, pool)
            fan = fan_out(server.url, client)
            return report(seq, rates, fan, len(direct_wrong))
    finally:
        api.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="execs per way and per mode (default 200)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file as JSON")
    args = parser.parse_args()
    if args.n < 2:
        parser.error("--n must be at least 2")
    figures = bench(args.n)
    if args.json is not None:
        document = {"n": args.n, "parallel": PARALLEL, **figures}
        args.json.write_text(json.dumps(document, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
