"""Cluster mode: where a one-shot run, a test run or a job runs. A run uses the receiving runner's
warm pool first; else Swarm places a fresh one-use container (through a manager), and the request
goes to the runner of the node it landed on, with the container named in the query
(``placedContainer``), signed afresh. That runner attaches to the container, runs the script (or
follows the job), and has the service removed afterwards."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlencode

import msgspec
from litestar import Request

from ..cluster.cluster import Cluster
from ..errors import ApiError
from ..jobs.manager import Job, PlacedJob
from ..jobs.spec import JOB_LABEL, JobRequest, fed_one_line, resources_of
from ..runtime import Runtime
from ..workloads.pool import Pooled
from ..workloads.runs import Given, fresh_body
from .forwarding import forwarded_target
from .middleware import SPOOLED_BODY_STATE

PLACED_QUERY = "placedContainer"


async def placed_run(runtime: Runtime, request: Request[Any, Any, Any], image: str, timeout_ms: int) -> Any:
    """None: run as on a single host (no cluster, or this node's pool has the image); a ``Given``:
    Swarm placed the run's container on this node; else the answer another node's runner gave."""
    cluster = runtime.cluster
    if cluster is None:
        return None
    given_id = request.query_params.get(PLACED_QUERY)
    if given_id:
        return await _given(cluster, runtime, given_id)
    if runtime.pools.get(image) is not None:
        return None
    local = await cluster.local()
    if local.manager:
        placed = await cluster.place_body(fresh_body(runtime.runs, image, timeout_ms))
        container_id, node_id, service_id = placed.container_id, placed.node_id, placed.service_id
    else:
        container_id, node_id, service_id = await cluster.place_through_a_manager(image, timeout_ms)
    if node_id == local.node_id:
        return await _given(cluster, runtime, container_id)
    try:
        return await _run_there(cluster, request, node_id, container_id)
    except ApiError:
        await cluster.remove_service(service_id)  # the run never reached its container: it goes
        raise


async def _given(cluster: Cluster, runtime: Runtime, container_id: str) -> Given:
    attached, service_id, _ = await cluster.attached(container_id, runtime.settings.instance)

    async def release() -> None:
        await cluster.remove_service(service_id)

    return Given(Pooled(attached.container_id, attached), release)


async def _run_there(cluster: Cluster, request: Request[Any, Any, Any], node_id: str, container_id: str) -> Any:
    peer = await cluster.peer(node_id)
    target = forwarded_target(request.scope)
    target += ("&" if "?" in target else "?") + urlencode({PLACED_QUERY: container_id})
    spooled = (request.scope.get("state") or {}).get(SPOOLED_BODY_STATE)
    body = spooled if spooled is not None else await request.body()
    return await cluster.forwarder.json(peer, request.method, target, body, request.headers.get("content-type"))


async def placed_job(runtime: Runtime, request: Request[Any, Any, Any], data: JobRequest) -> Any:
    """None: no cluster (the job runs here as on a single host); a ``Job``: this runner follows it;
    else the answer of the node's runner that does. On a manager (the route is ``ON_A_MANAGER``)."""
    cluster = runtime.cluster
    if cluster is None:
        return None
    given_id = request.query_params.get(PLACED_QUERY)
    if given_id:
        return await _follow_job(cluster, runtime, data, given_id)
    job_id, body = runtime.jobs.body_for(data)
    image = await runtime.engine.run(lambda api: api.inspect_image(data.image))
    reserve = msgspec.to_builtins(resources_of(data, runtime.settings))
    placed = await cluster.place_body(fed_one_line(body, image.get("Config") or {}), reserve, followed=True)
    cluster.remember_job(job_id, placed.node_id)
    try:
        if placed.node_id == (await cluster.local()).node_id:
            return await _follow_job(cluster, runtime, data, placed.container_id)
        return await _run_there(cluster, request, placed.node_id, placed.container_id)
    except BaseException:
        await asyncio.shield(cluster.remove_service(placed.service_id))  # nobody follows the job: it goes
        raise


async def _follow_job(cluster: Cluster, runtime: Runtime, data: JobRequest, container_id: str) -> Job:
    attached, service_id, job_id = await cluster.attached(container_id, runtime.settings.instance, JOB_LABEL)

    async def release() -> None:
        await cluster.remove_service(service_id)

    node = (await cluster.local()).node_id
    try:
        return await runtime.jobs.submit(data, PlacedJob(job_id, attached, node, release))
    except BaseException:
        attached.close()
        await asyncio.shield(release())
        raise
