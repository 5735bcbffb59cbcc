"""One runner per node of the swarm bed, in this process, each on its own node's engine, peers as
loopback URLs, sharing a real redis-server as their nonce store: a cluster as the stack runs it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

from docker_runner.server import bind_listener
from docker_runner_client import HttpDockerRunnerClient
from tests.support.redis_server import RedisServer
from tests.support.server import TEST_SECRET, RunningServer, make_settings, running_runner
from tests.support.swarm_bed import BedNode, SwarmBed


@dataclass(frozen=True)
class ClusterRunner:
    node: BedNode
    server: RunningServer

    @property
    def url(self) -> str:
        return self.server.url

    def client(self, **options: object) -> HttpDockerRunnerClient:
        return HttpDockerRunnerClient(self.server.url, TEST_SECRET, **options)  # type: ignore[arg-type]


@contextmanager
def cluster_runners(bed: SwarmBed, redis: RedisServer, **overrides: object) -> Iterator[list[ClusterRunner]]:
    """A runner per bed node (same instance name: one cluster), stopped at the end."""
    listeners = [bind_listener("127.0.0.1", 0) for _ in bed.nodes]
    urls = ",".join(f"http://127.0.0.1:{listener.getsockname()[1]}" for listener in listeners)
    instance = "cluster-" + uuid.uuid4().hex[:8]
    with ExitStack() as stack:
        runners = []
        for node, listener in zip(bed.nodes, listeners, strict=True):
            values: dict[str, object] = {
                "docker_host": node.socket,
                "cluster": "swarm",
                "peers": urls,
                "nonce_store": redis.url,
                "instance": instance,
                "port": listener.getsockname()[1],
                **overrides,
            }
            server = stack.enter_context(running_runner(make_settings(**values), listener))
            runners.append(ClusterRunner(node, server))
        yield runners
