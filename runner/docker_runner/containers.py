"""Container operations of the REST API, as the engine is asked for them."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from .container_spec import ContainerOpts, build_create_body
from .engine import APIClient, Engine
from .errors import ApiError

log = logging.getLogger("docker_runner.containers")

# Answers of stop that mean "it is stopped, or about to be gone": not a failure for the caller.
_STOP_IS_DONE = (304, 404, 409)


def _create_and_start(api: APIClient, body: dict[str, Any], name: str | None, platform: str | None) -> dict[str, Any]:
    created = api.create_container_from_config(body, name=name, platform=platform)
    container_id = str(created["Id"])
    try:
        api.start(container_id)
    except Exception:
        _remove_quietly(api, container_id)
        raise
    try:
        state = api.inspect_container(container_id)
    except Exception:  # an auto-removed container that already ended: it did start
        return {"containerId": container_id, "name": name or "", "status": "running"}
    return {
        "containerId": container_id,
        "name": str(state.get("Name", "")).lstrip("/"),
        "status": str(state.get("State", {}).get("Status") or "running"),
    }


def _remove_quietly(api: APIClient, container_id: str) -> None:
    try:
        api.remove_container(container_id, force=True, v=True)
    except Exception:
        log.warning("could not remove container %s after a failed start", container_id[:12], exc_info=True)


async def start(engine: Engine, opts: ContainerOpts, instance: str) -> dict[str, Any]:
    body = build_create_body(opts, instance)
    return await engine.run(lambda api: _create_and_start(api, body, opts.name, opts.platform))


async def stop(engine: Engine, container_id: str, timeout_sec: int) -> None:
    try:
        await engine.run(lambda api: api.stop(container_id, timeout=timeout_sec))
    except ApiError as error:
        if error.status not in _STOP_IS_DONE:
            raise


async def remove(engine: Engine, container_id: str, force: bool, remove_volumes: bool) -> None:
    try:
        await engine.run(lambda api: api.remove_container(container_id, force=force, v=remove_volumes))
    except ApiError as error:
        if error.status != 404 and error.code != "removal_in_progress":
            raise


async def inspect(engine: Engine, container_id: str) -> dict[str, Any]:
    return await engine.run(lambda api: api.inspect_container(container_id))


async def labels(engine: Engine, container_id: str) -> dict[str, str]:
    document = await inspect(engine, container_id)
    return dict(document.get("Config", {}).get("Labels") or {})


async def networks(engine: Engine, container_id: str) -> list[str]:
    document = await inspect(engine, container_id)
    return sorted((document.get("NetworkSettings", {}).get("Networks") or {}).keys())


def _ids_by_creation(listed: list[dict[str, Any]]) -> list[str]:
    ordered = sorted(listed, key=lambda item: (int(item.get("Created", 0)), str(item["Id"])))
    return [str(item["Id"]) for item in ordered]


async def find_by_labels(engine: Engine, wanted: Mapping[str, str], include_stopped: bool) -> list[str]:
    filters = {"label": [f"{key}={value}" for key, value in wanted.items()]}
    listed = await engine.run(lambda api: api.containers(all=include_stopped, filters=filters))
    return _ids_by_creation(listed)


async def list_by_volume(engine: Engine, volume_name: str) -> list[str]:
    listed = await engine.run(lambda api: api.containers(all=True, filters={"volume": volume_name}))
    return _ids_by_creation(listed)


async def remove_volume(engine: Engine, volume_name: str, force: bool) -> None:
    await engine.run(lambda api: api.remove_volume(volume_name, force=force))
