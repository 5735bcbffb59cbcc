"""The cluster on three engines of this machine (scripts/swarm-bed.sh), one runner per node in this
process, peers as loopback URLs, a real redis-server for the nonces: the figures of the cluster mode.

1. Placement: N containers started through the three runners in turn, the first 60 one at a time,
   the rest 6 at once: how many land on each node (target: every node between 25% and 42%), the
   start p50 of one at a time (target: at most 0.8 s; 6 at once printed beside it), and 0
   misrouted requests: an exec in each container through a random runner must answer.
2. Routing: `echo` in a container through a runner on another node against the same exec through
   the owning node's runner, alternating blocks (target: routed p50 at most 1.3x owner's).
3. A lost engine: a mixed load (execs in containers of every node), then one engine SIGKILLed:
   every request for its containers answers 503 node_unavailable within 2 s; the others keep their
   latency (target: p50 after within 1.5x of before).
4. The merged event stream: every container event of every node of the placement run delivered
   once, across a reconnect to another runner.

    .venv/bin/python bench/cluster.py [--containers 300] [--json PATH]
"""

from __future__ import annotations

import argparse
import base64
import json
import random
import statistics
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.cluster_runners import ClusterRunner, cluster_runners
from tests.support.docker_env import TEST_IMAGE
from tests.support.redis_server import running_redis
from tests.support.signed import signed_stream
from tests.support.swarm_bed import BedLease, NodeOutage, SwarmBed, parse_up_output, run_bed

from docker_runner_client import ContainerOpts, DockerRunnerError, HttpDockerRunnerClient

STOPS_ON_TERM = ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"]
LABEL = "dev.docker-runner.bench"
AT_ONCE = 6
ONE_BY_ONE = 60  # the first starts, one at a time (the rest AT_ONCE at a time)
ROUTING_BLOCK = 20


def p50(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def p95(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=20, method="inclusive")[18] * 1000 if len(samples) > 1 else p50(samples)


def _opts(run_id: str) -> ContainerOpts:
    return ContainerOpts(image=TEST_IMAGE, cmd=list(STOPS_ON_TERM), labels={LABEL: run_id}, ttl_seconds=3600)


def _node_map(bed: SwarmBed) -> dict[str, int]:
    """Container id -> bed node number, from every engine directly."""
    found: dict[str, int] = {}
    for node in bed.nodes:
        api = node.api()
        try:
            for item in api.containers(filters={"label": LABEL}):
                found[str(item["Id"])] = node.number
        finally:
            api.close()
    return found


def placement(runners: list[ClusterRunner], bed: SwarmBed, count: int, run_id: str) -> dict[str, Any]:
    started: list[tuple[str, float]] = []
    lock = threading.Lock()

    def start(index: int) -> None:
        with runners[index % len(runners)].client(max_retries=0, timeout_ms=60_000) as client:
            begun = time.perf_counter()
            container_id = client.start_container(_opts(run_id)).container_id
            with lock:
                started.append((container_id, time.perf_counter() - begun))

    one_by_one = min(ONE_BY_ONE, count)
    for index in range(one_by_one):  # the start latency of one request, the target's figure
        start(index)
    with ThreadPoolExecutor(AT_ONCE) as pool:  # then Swarm under a few at once
        list(pool.map(start, range(one_by_one, count)))
    homes = _node_map(bed)
    spread = Counter(homes.get(container_id, 0) for container_id, _ in started)
    misrouted = 0
    clients = [runner.client(max_retries=0) for runner in runners]
    try:
        for container_id, _ in started:
            try:
                if random.choice(clients).exec_run(container_id, ["true"]).exit_code != 0:
                    misrouted += 1
            except DockerRunnerError:
                misrouted += 1
    finally:
        for client in clients:
            client.close()
    shares = {node: round(100 * spread.get(node, 0) / count, 1) for node in sorted({n.number for n in bed.nodes})}
    return {
        "containers": count,
        "share_percent": shares,
        "unplaced": spread.get(0, 0),
        "start_p50_ms": round(p50([s for _, s in started[:one_by_one]]), 1),
        "start_p95_ms": round(p95([s for _, s in started[:one_by_one]]), 1),
        "start_at_once_p50_ms": round(p50([s for _, s in started[one_by_one:]] or [0.0]), 1),
        "start_at_once_p95_ms": round(p95([s for _, s in started[one_by_one:]] or [0.0]), 1),
        "misrouted": misrouted,
        "ids": [container_id for container_id, _ in started],
        "homes": homes,
    }


def routing(runners: list[ClusterRunner], homes: dict[str, int], rounds: int) -> dict[str, Any]:
    by_node = {runner.node.number: runner for runner in runners}
    container_id, home = next(iter(homes.items()))
    owner = by_node[home].client(max_retries=0)
    away = next(runner for number, runner in by_node.items() if number != home).client(max_retries=0)
    samples: dict[str, list[float]] = {"owner": [], "routed": []}
    try:
        for client in (owner, away):  # warm-up: connections, the routing cache
            for _ in range(5):
                client.exec_run(container_id, ["echo", "hi"])
        order = [("owner", owner), ("routed", away)]
        for _ in range(rounds):
            for name, client in order:
                for _ in range(ROUTING_BLOCK):
                    begun = time.perf_counter()
                    assert client.exec_run(container_id, ["echo", "hi"]).stdout == "hi\n"
                    samples[name].append(time.perf_counter() - begun)
            order.reverse()
    finally:
        owner.close()
        away.close()
    ratio = p50(samples["routed"]) / p50(samples["owner"])
    return {
        "owner_p50_ms": round(p50(samples["owner"]), 2),
        "routed_p50_ms": round(p50(samples["routed"]), 2),
        "ratio": round(ratio, 3),
    }


def _timed_exec(client: HttpDockerRunnerClient, container_id: str) -> tuple[float, str]:
    begun = time.perf_counter()
    try:
        client.exec_run(container_id, ["true"])
        outcome = "ok"
    except DockerRunnerError as error:
        outcome = error.code
    return time.perf_counter() - begun, outcome


def lost_engine(runners: list[ClusterRunner], homes: dict[str, int], outage: NodeOutage) -> dict[str, Any]:
    lost_node = 3
    by_node: dict[int, list[str]] = {}
    for container_id, node in homes.items():
        by_node.setdefault(node, []).append(container_id)
    others = [cid for node, ids in by_node.items() if node != lost_node for cid in ids[:10]]
    lost = by_node.get(lost_node, [])[:20]
    through = [runner for runner in runners if runner.node.number != lost_node]
    clients = [runner.client(max_retries=0) for runner in through]

    def load(ids: list[str]) -> list[tuple[float, str]]:
        return [_timed_exec(random.choice(clients), cid) for cid in ids for _ in range(3)]

    try:
        before = load(others)
        outage.kill(lost_node)
        time.sleep(2)  # the heartbeat's horizon: from here on the node is lost to every runner
        during_lost = load(lost)
        during_others = load(others)
    finally:
        for client in clients:
            client.close()
        outage.revive(lost_node)
    before_ok = [s for s, outcome in before if outcome == "ok"]
    others_ok = [s for s, outcome in during_others if outcome == "ok"]
    return {
        "lost_requests": len(during_lost),
        "lost_all_node_unavailable": all(outcome == "node_unavailable" for _, outcome in during_lost),
        "lost_max_ms": round(max(s for s, _ in during_lost) * 1000, 1) if during_lost else None,
        "others_failed": sum(1 for _, outcome in during_others if outcome != "ok"),
        "others_p50_before_ms": round(p50(before_ok), 2),
        "others_p50_during_ms": round(p50(others_ok), 2) if others_ok else None,
        "others_ratio": round(p50(others_ok) / p50(before_ok), 3) if others_ok else None,
    }


class MergedReader:
    """The merged stream of a run's containers, read live from before the run: through one runner
    until a share of it arrived, then (the connection dropped) resumed on another runner with the
    last id, until every expected event is there."""

    def __init__(self, runners: list[ClusterRunner], run_id: str, first_share: int) -> None:
        filters = {"type": ["container"], "label": [f"{LABEL}={run_id}"]}
        self._target = "/v1/events/sse?filters=" + base64.b64encode(json.dumps(filters).encode()).decode()
        self._runners = runners
        self._first_share = first_share
        self.got: list[tuple[Any, ...]] = []
        self.expected: set[tuple[str, str]] = set()
        self.complete = threading.Event()  # set once `expected` is known
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._connected = threading.Event()

    def start(self) -> None:
        self._thread.start()
        self._connected.wait(30)

    def _seen(self) -> set[tuple[str, str]]:
        return {(container, action) for _, action, container, _ in self.got}

    def _read(self, runner: ClusterRunner, last_id: str | None, stop: Callable[[], bool]) -> str | None:
        headers = {"last-event-id": last_id} if last_id else {}
        with signed_stream(runner.url, self._target, headers=headers, timeout=120) as answer:
            self._connected.set()
            event_id = None
            for line in answer.iter_lines():
                if line.startswith("id:"):
                    event_id = line[3:].strip()
                elif line.startswith("data:"):
                    payload = json.loads(line[5:])
                    if payload.get("type") == "event":
                        event = payload["event"]
                        self.got.append((event["timeNano"], event["Action"], event["Actor"]["ID"], payload["node"]))
                        last_id = event_id
                if stop():
                    break
        return last_id

    def _run(self) -> None:
        last = self._read(self._runners[0], None, lambda: len(self.got) >= self._first_share)
        self._read(self._runners[1], last, lambda: self.complete.is_set() and self.expected <= self._seen())

    def figures(self, timeout: float) -> dict[str, Any]:
        self._thread.join(timeout)
        keys = [(t, a, c) for t, a, c, _ in self.got]
        return {
            "expected": len(self.expected),
            "delivered": len(self.got),
            "missing": len(self.expected - self._seen()),
            "doubled": len(keys) - len(set(keys)),
            "nodes": len({node for *_, node in self.got}),
        }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--containers", type=int, default=300)
    parser.add_argument("--routing-rounds", type=int, default=10)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    lease = BedLease(wait_seconds=300)
    run_id = uuid.uuid4().hex[:8]
    figures: dict[str, Any] = {}
    try:
        run_bed("down")
        bed = parse_up_output(run_bed("up", "3"))
        with running_redis() as redis, cluster_runners(bed, redis, placement_timeout_ms=60_000) as runners:
            reader = MergedReader(runners, run_id, first_share=args.containers)
            reader.start()
            placed = placement(runners, bed, args.containers, run_id)
            homes = placed.pop("homes")
            ids = placed.pop("ids")
            figures["placement"] = placed
            figures["routing"] = routing(runners, homes, args.routing_rounds)
            clients = [runner.client(max_retries=0) for runner in runners]
            try:
                for index, container_id in enumerate(ids):
                    clients[index % 3].remove_container(container_id, force=True)
            finally:
                for client in clients:
                    client.close()
            reader.expected = {(cid, action) for cid in ids for action in ("create", "start", "destroy")}
            reader.complete.set()
            figures["events"] = reader.figures(timeout=120)
            again = placement(runners, bed, 60, run_id + "b")
            outage = NodeOutage()
            try:
                figures["lost_engine"] = lost_engine(runners, again["homes"], outage)
            finally:
                outage.restore()
    finally:
        run_bed("down")
        lease.close()
    _report(figures)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


def _report(figures: dict[str, Any]) -> None:
    placed, routed, events, lost = figures["placement"], figures["routing"], figures["events"], figures["lost_engine"]
    shares = placed["share_percent"]
    print(
        f"placement: {placed['containers']} containers, shares {shares} (target: each 25-42%), "
        f"unplaced {placed['unplaced']}, misrouted {placed['misrouted']} (target 0)"
    )
    print(
        f"  start p50 {placed['start_p50_ms']} ms, p95 {placed['start_p95_ms']} ms, one at a time"
        f" (target: p50 <= 800 ms); {AT_ONCE} at a time: p50 {placed['start_at_once_p50_ms']} ms,"
        f" p95 {placed['start_at_once_p95_ms']} ms"
    )
    print(
        f"routing: routed exec p50 {routed['routed_p50_ms']} ms vs owner {routed['owner_p50_ms']} ms, "
        f"x{routed['ratio']} (target <= 1.3)"
    )
    print(
        f"lost engine: {lost['lost_requests']} requests for its containers, all node_unavailable "
        f"{lost['lost_all_node_unavailable']}, slowest {lost['lost_max_ms']} ms (target < 2000)"
    )
    print(
        f"  others: {lost['others_failed']} failed, p50 {lost['others_p50_before_ms']} ms before, "
        f"{lost['others_p50_during_ms']} ms during, x{lost['others_ratio']} (target <= 1.5)"
    )
    print(
        f"merged events: {events['delivered']} delivered of {events['expected']} expected, missing "
        f"{events['missing']}, doubled {events['doubled']} (target 0 and 0), from {events['nodes']} nodes"
    )


if __name__ == "__main__":
    sys.exit(main())
