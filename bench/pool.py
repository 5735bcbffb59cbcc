"""Pool latency: a one-shot ``echo hello`` run in a fresh container against the same run from a warm pool.

One run starts a real runner in-process on a free port (as the tests do) with a pool of the
busybox image, and tags the same image a second time without a pool, so both ways run the same
bits through the same ``POST /v1/run`` (client: ``HttpDockerRunnerClient.run``):

- fresh: the runner creates, starts and attaches a container for the run, and removes it after;
- pooled: the run takes a warm container (started and attached ahead of time) from the pool.

Before every sample the runner is let settle (the pool full, nothing being created or removed),
so each figure is the latency a run sees from a warm pool, not the pool's refill rate. The two
ways alternate in blocks (ABBA) and every answer is checked (stdout ``hello``, exit 0).

Target: the pooled p50 at most 15% of the fresh p50.

    .venv/bin/python bench/pool.py [--n 60] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import docker
from tests.support.server import TEST_SECRET, make_settings, running_runner
from tests.support.waiting import wait_for

from docker_runner_client import HttpDockerRunnerClient

IMAGE = os.environ.get("RUNNER_TEST_IMAGE", "runner-test/busybox:latest")
FRESH_TAG = "bench-fresh"  # the same image under a tag that has no pool
POOL_MIN = 2
BLOCK = 10
TARGET_RATIO = 0.15


class BenchError(RuntimeError):
    """A run gave a wrong answer: the figures would measure failures."""


@dataclass
class Figures:
    way: str
    count: int
    p50_ms: float
    p95_ms: float
    mean_ms: float


def percentiles(samples: list[float]) -> tuple[float, float]:
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return cuts[49] * 1000, cuts[94] * 1000


def figures(way: str, samples: list[float]) -> Figures:
    p50, p95 = percentiles(samples)
    return Figures(way, len(samples), round(p50, 1), round(p95, 1), round(statistics.fmean(samples) * 1000, 1))


def timed_run(client: HttpDockerRunnerClient, image: str, pooled: bool) -> float:
    started = time.perf_counter()
    result = client.run(image, "echo hello")
    elapsed = time.perf_counter() - started
    if (result.exit_code, result.stdout, result.pooled) != (0, "hello\n", pooled):
        raise BenchError(f"unexpected answer from {image}: {result}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=60, help="runs of each way (default 60)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    api = docker.APIClient(version="auto")
    repository = IMAGE.split(":")[0]
    fresh_image = f"{repository}:{FRESH_TAG}"
    api.tag(IMAGE, repository, FRESH_TAG)
    pools = json.dumps([{"image": IMAGE, "min": POOL_MIN, "max": POOL_MIN + 2}])
    settings = make_settings(pools=pools, pool_maintenance_ms=60_000)
    label = f"dev.docker-runner.instance={settings.instance}"
    try:
        with (
            running_runner(settings) as server,
            HttpDockerRunnerClient(server.url, TEST_SECRET, max_retries=0) as client,
        ):

            def settled() -> bool:
                (stats,) = client.pools()
                busy = stats.idle != POOL_MIN or stats.creating or stats.in_use
                return not busy and len(api.containers(all=True, filters={"label": label})) == POOL_MIN

            ways: dict[str, Callable[[], float]] = {
                "fresh": lambda: timed_run(client, fresh_image, pooled=False),
                "pooled": lambda: timed_run(client, IMAGE, pooled=True),
            }
            samples: dict[str, list[float]] = {way: [] for way in ways}
            order = ["fresh", "pooled", "pooled", "fresh"]
            for way in ways:  # warm-up, not counted
                wait_for(settled, timeout=60, what="the runner to settle")
                ways[way]()
            block = 0
            while min(len(found) for found in samples.values()) < args.n:
                way = order[block % len(order)]
                for _ in range(min(BLOCK, args.n - len(samples[way]))):
                    wait_for(settled, timeout=60, what="the runner to settle")
                    samples[way].append(ways[way]())
                block += 1
    finally:
        api.remove_image(fresh_image)
        api.close()

    results = [figures(way, found) for way, found in samples.items()]
    fresh, pooled = results
    ratio = pooled.p50_ms / fresh.p50_ms
    for item in results:
        line = f"p50 {item.p50_ms:8.1f} ms  p95 {item.p95_ms:8.1f} ms  mean {item.mean_ms:8.1f} ms"
        print(f"{item.way:7s} n={item.count:4d}  {line}")
    verdict = "met" if ratio <= TARGET_RATIO else "MISSED"
    print(f"pooled/fresh p50 = {ratio:.3f} (target <= {TARGET_RATIO}): {verdict}")
    if args.json:
        document = {"figures": [asdict(item) for item in results], "ratio": ratio, "target": TARGET_RATIO}
        args.json.write_text(json.dumps(document, indent=2) + "\n")
    return 0 if ratio <= TARGET_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
