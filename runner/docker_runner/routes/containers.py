"""Container lifecycle and lookups (PROTOCOL section 3)."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import get, post
from litestar.params import JSONBody, QueryParameter

from .. import containers
from ..container_spec import ContainerOpts, NonEmptyStr
from ..errors import validation_error
from ..runtime import RuntimeDep

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


@post("/v1/containers/start", status_code=200)
async def start_container(data: JSONBody[ContainerOpts], runtime: RuntimeDep) -> dict[str, Any]:
    started = await containers.start(runtime.engine, data, runtime.settings.instance)
    runtime.touches.touch(started["containerId"])
    return started


@post("/v1/containers/stop", status_code=204)
async def stop_container(data: JSONBody[StopBody], runtime: RuntimeDep) -> None:
    timeout = 10 if data.timeout_sec is None else data.timeout_sec
    await containers.stop(runtime.engine, data.container_id, timeout)


@post("/v1/containers/remove", status_code=204)
async def remove_container(data: JSONBody[RemoveBody], runtime: RuntimeDep) -> None:
    await containers.remove(runtime.engine, data.container_id, data.force, data.remove_volumes)


@get("/v1/containers/inspect")
async def inspect_container(container_id: ContainerIdQuery, runtime: RuntimeDep) -> dict[str, Any]:
    return await containers.inspect(runtime.engine, container_id)


@get("/v1/containers/labels")
async def container_labels(container_id: ContainerIdQuery, runtime: RuntimeDep) -> dict[str, Any]:
    return {"labels": await containers.labels(runtime.engine, container_id)}


@get("/v1/containers/networks")
async def container_networks(container_id: ContainerIdQuery, runtime: RuntimeDep) -> dict[str, Any]:
    return {"networks": await containers.networks(runtime.engine, container_id)}


@post("/v1/containers/findByLabels", status_code=200)
async def find_by_labels(data: JSONBody[FindByLabelsBody], runtime: RuntimeDep) -> dict[str, Any]:
    if not data.labels:
        raise validation_error("labels", "must have at least one key")
    return {"containerIds": await containers.find_by_labels(runtime.engine, data.labels, data.all)}


@get("/v1/containers/listByVolume")
async def list_by_volume(
    volume_name: Annotated[str, QueryParameter(name="volumeName", min_length=1)], runtime: RuntimeDep
) -> dict[str, Any]:
    return {"containerIds": await containers.list_by_volume(runtime.engine, volume_name)}


@post("/v1/containers/touch", status_code=204)
async def touch_container(data: JSONBody[ContainerRef], runtime: RuntimeDep) -> None:
    document = await containers.inspect(runtime.engine, data.container_id)
    runtime.touches.touch(str(document["Id"]))


ROUTES = [
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
