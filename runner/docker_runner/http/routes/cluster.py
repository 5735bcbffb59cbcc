"""Cluster mode [ext]: this runner's node, the cluster's nodes and their runners, and the two calls
runners make of each other (where Swarm says a container is; a service removed on a manager).
Served only with ``DOCKER_RUNNER_CLUSTER=swarm``."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import get, post
from litestar.params import JSONBody, QueryParameter

from ...containers.managed import not_found_container
from ...containers.spec import NonEmptyStr
from ...errors import ApiError, Kind
from ...runtime import Runtime
from ...workloads.runs import fresh_body
from ..dependencies import RuntimeDep
from ..forwarding import ON_A_MANAGER
from ..openapi import errors


def _cluster_of(runtime: Runtime) -> Any:
    if runtime.cluster is None:  # the routes are not served without the cluster; a guard for types
        raise ApiError(Kind.NOT_FOUND, "not_found", "The cluster mode is off")
    return runtime.cluster


class SelfAnswer(msgspec.Struct, rename="camel"):
    node_id: str
    hostname: str
    role: str


class RunnerOfNode(msgspec.Struct):
    url: str | None
    reachable: bool


class NodeAnswer(msgspec.Struct, rename="camel"):
    node_id: str
    hostname: str
    role: str
    availability: str
    state: str
    runner: RunnerOfNode


class ClusterAnswer(msgspec.Struct):
    nodes: list[NodeAnswer]


class LocatedAnswer(msgspec.Struct, rename="camel"):
    node_id: str
    container_id: str


class ServiceRef(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    service_id: NonEmptyStr


class PlaceRequest(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    image: NonEmptyStr
    timeout_ms: Annotated[int, msgspec.Meta(ge=0)] = 0


class PlacedAnswer(msgspec.Struct, rename="camel"):
    container_id: str
    node_id: str
    service_id: str


@get("/v1/cluster/self", responses=errors())
async def cluster_self(runtime: RuntimeDep) -> SelfAnswer:
    """The Swarm node this runner serves (its engine's)."""
    local = await _cluster_of(runtime).local()
    return SelfAnswer(local.node_id, local.hostname, "manager" if local.manager else "worker")


@get("/v1/cluster", responses=errors())
async def cluster_nodes(runtime: RuntimeDep) -> ClusterAnswer:
    """Every node of the Swarm (its role, availability and state, as Swarm says) with its runner."""
    nodes = await _cluster_of(runtime).nodes()
    return ClusterAnswer([msgspec.convert(node, NodeAnswer) for node in nodes])


@get("/v1/cluster/locate", responses=errors(), opt={ON_A_MANAGER: True})
async def cluster_locate(
    runtime: RuntimeDep, container_id: Annotated[str, QueryParameter(name="containerId", min_length=1)]
) -> LocatedAnswer:
    """Where Swarm runs the container (asked by a worker's runner, whose engine cannot say)."""
    task = await _cluster_of(runtime).locate_in_swarm(container_id)
    if task is None:
        raise not_found_container(container_id)
    return LocatedAnswer(task.node_id, task.container_id)


@post("/v1/cluster/services/remove", status_code=204, responses=errors(), opt={ON_A_MANAGER: True})
async def cluster_remove_service(data: JSONBody[ServiceRef], runtime: RuntimeDep) -> None:
    """Remove a service the runner placed (asked by a worker's runner, whose engine cannot)."""
    await _cluster_of(runtime).remove_service(data.service_id)


@post("/v1/cluster/place", status_code=200, responses=errors(), opt={ON_A_MANAGER: True})
async def cluster_place(data: JSONBody[PlaceRequest], runtime: RuntimeDep) -> PlacedAnswer:
    """Place a fresh one-use container of ``image`` for a run (asked by a worker's runner): the same
    bootstrap body, checked by the same policy, as a run here would make."""
    placed = await _cluster_of(runtime).place_body(fresh_body(runtime.runs, data.image, data.timeout_ms))
    return PlacedAnswer(placed.container_id, placed.node_id, placed.service_id)


ROUTES = [cluster_self, cluster_nodes, cluster_locate, cluster_remove_service, cluster_place]
