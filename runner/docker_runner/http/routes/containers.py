"""Container lifecycle and lookups (docs/protocol.md section 3)."""

from __future__ import annotations

import json
from typing import Annotated, Any

import msgspec
from litestar import get, post
from litestar.params import JSONBody, QueryParameter
from litestar.types import Scope

from ...containers import lifecycle, reaper
from ...containers.spec import ContainerOpts, NonEmptyStr, build_create_body
from ...errors import validation_error
from ..dependencies import RuntimeDep
from ..forwarding import GATHERED, LOCATED_BY, ON_A_MANAGER
from ..observe import note
from ..openapi import errors

ContainerIdQuery = Annotated[str, QueryParameter(name="containerId", min_length=1)]


class StopBody(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    container_id: NonEmptyStr
    timeout_sec: Annotated[int, msgspec.Meta(ge=0)] | None = None


class RemoveBody(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    container_id: NonEmptyStr
    force: bool = False
    remove_volumes: bool = False


class ContainerRef(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    container_id: NonEmptyStr


class FindByLabelsBody(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    labels: dict[str, str]
    all: bool = False


class StartedContainer(msgspec.Struct, rename="camel"):
    container_id: str
    name: str
    status: str


class LabelsAnswer(msgspec.Struct):
    labels: dict[str, str]


class NetworksAnswer(msgspec.Struct):
    networks: list[str]


class ContainerIds(msgspec.Struct, rename="camel"):
    container_ids: list[str]


class ListedContainer(msgspec.Struct, rename="camel"):
    container_id: str
    name: str
    image: str
    status: str
    created_at: int
    labels: dict[str, str]
    ttl_seconds: int | None
    ttl_left_seconds: int | None


class ContainerList(msgspec.Struct):
    containers: list[ListedContainer]


def _label_filters(encoded: str | None) -> list[str]:
    """``labels``: a JSON object of labels every listed container carries."""
    if not encoded:
        return []
    try:
        wanted = json.loads(encoded)
    except ValueError:
        wanted = None
    if not isinstance(wanted, dict) or not all(isinstance(value, str) for value in wanted.values()):
        raise validation_error("labels", 'must be a JSON object of strings, e.g. {"app":"web"}')
    return [f"{key}={value}" for key, value in wanted.items()]


@get("/v1/containers", responses=errors(), opt={GATHERED: "containers"})
async def list_containers(
    runtime: RuntimeDep,
    include_stopped: Annotated[bool, QueryParameter(name="all")] = False,
    labels: Annotated[str | None, QueryParameter()] = None,
) -> ContainerList:
    """[ext] The containers in scope (running ones unless ``all``), oldest first, each with its TTL
    and the seconds left of it (null without a TTL, or when another runner instance reaps it)."""
    filters = runtime.managed.label_filters() + _label_filters(labels)
    listed = await reaper.list_containers(
        runtime.engine, runtime.touches, runtime.settings.instance, filters, include_stopped
    )
    return ContainerList([ListedContainer(**vars(item)) for item in listed])


@post("/v1/containers/start", status_code=200, responses=errors(), opt={ON_A_MANAGER: True})
async def start_container(data: JSONBody[ContainerOpts], scope: Scope, runtime: RuntimeDep) -> StartedContainer:
    note(scope, image=data.image)
    body = build_create_body(data, runtime.settings.instance)
    if runtime.cluster is not None:  # placed by Swarm, on whichever node it picks
        started = await runtime.cluster.start(data, body, runtime.checker)
        note(scope, containerId=started["containerId"])
        return StartedContainer(started["containerId"], started["name"], started["status"])
    if data.placement is not None:
        raise validation_error("placement", "needs the cluster mode (DOCKER_RUNNER_CLUSTER=swarm)")
    started = await lifecycle.create_and_start(
        runtime.engine, runtime.checker, runtime.managed, body, data.name, data.platform
    )
    runtime.touches.touch(started["containerId"])
    note(scope, containerId=started["containerId"])
    return StartedContainer(started["containerId"], started["name"], started["status"])


@post("/v1/containers/stop", status_code=204, responses=errors(), opt={LOCATED_BY: ("body", "containerId")})
async def stop_container(data: JSONBody[StopBody], scope: Scope, runtime: RuntimeDep) -> None:
    note(scope, containerId=data.container_id)
    timeout = 10 if data.timeout_sec is None else data.timeout_sec
    await lifecycle.stop(runtime.engine, runtime.managed, data.container_id, timeout)


@post("/v1/containers/remove", status_code=204, responses=errors(), opt={LOCATED_BY: ("body", "containerId")})
async def remove_container(data: JSONBody[RemoveBody], scope: Scope, runtime: RuntimeDep) -> None:
    note(scope, containerId=data.container_id)
    if runtime.cluster is not None and await runtime.cluster.remove_placed(data.container_id):
        return  # its service is removed, and with it the container
    managed, reference = runtime.managed, data.container_id
    removed = await lifecycle.remove(runtime.engine, managed, reference, data.force, data.remove_volumes)
    runtime.channels.forget(removed)


@get("/v1/containers/inspect", responses=errors(), opt={LOCATED_BY: ("query", "containerId")})
async def inspect_container(container_id: ContainerIdQuery, scope: Scope, runtime: RuntimeDep) -> dict[str, Any]:
    note(scope, containerId=container_id)
    return await lifecycle.inspect(runtime.engine, runtime.managed, container_id)


@get("/v1/containers/labels", responses=errors(), opt={LOCATED_BY: ("query", "containerId")})
async def container_labels(container_id: ContainerIdQuery, scope: Scope, runtime: RuntimeDep) -> LabelsAnswer:
    note(scope, containerId=container_id)
    return LabelsAnswer(await lifecycle.labels(runtime.engine, runtime.managed, container_id))


@get("/v1/containers/networks", responses=errors(), opt={LOCATED_BY: ("query", "containerId")})
async def container_networks(container_id: ContainerIdQuery, scope: Scope, runtime: RuntimeDep) -> NetworksAnswer:
    note(scope, containerId=container_id)
    return NetworksAnswer(await lifecycle.networks(runtime.engine, runtime.managed, container_id))


@post("/v1/containers/findByLabels", status_code=200, responses=errors(), opt={GATHERED: "containerIds"})
async def find_by_labels(data: JSONBody[FindByLabelsBody], runtime: RuntimeDep) -> ContainerIds:
    if not data.labels:
        raise validation_error("labels", "must have at least one key")
    return ContainerIds(await lifecycle.find_by_labels(runtime.engine, runtime.managed, data.labels, data.all))


@get("/v1/containers/listByVolume", responses=errors(), opt={GATHERED: "containerIds"})
async def list_by_volume(
    volume_name: Annotated[str, QueryParameter(name="volumeName", min_length=1)], runtime: RuntimeDep
) -> ContainerIds:
    return ContainerIds(await lifecycle.list_by_volume(runtime.engine, runtime.managed, volume_name))


@post("/v1/containers/touch", status_code=204, responses=errors(), opt={LOCATED_BY: ("body", "containerId")})
async def touch_container(data: JSONBody[ContainerRef], scope: Scope, runtime: RuntimeDep) -> None:
    note(scope, containerId=data.container_id)
    document = await lifecycle.inspect(runtime.engine, runtime.managed, data.container_id)
    runtime.touches.touch(str(document["Id"]))


ROUTES = [
    list_containers,
    start_container,
    stop_container,
    remove_container,
    inspect_container,
    container_labels,
    container_networks,
    find_by_labels,
    list_by_volume,
    touch_container,
]
