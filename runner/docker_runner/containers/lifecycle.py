"""Container operations of the REST API, as the engine is asked for them, inside the runner's managed."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from ..engine.core import APIClient, Engine, volume_labels
from ..engine.removals import remove_or_queue
from ..errors import ApiError, Kind, from_engine
from ..policy.checker import CreateChecker, container_references
from .managed import ManagedScope, checked_container, is_managed
from .spec import FAST_EXEC_LABEL, INSTANCE_LABEL, MANAGED_LABEL

log = logging.getLogger("docker_runner.containers")

# Answers of stop that mean "it is stopped (not_modified), gone, or about to be": not a failure for the caller.
_STOP_IS_DONE = (Kind.NOT_FOUND, Kind.CONFLICT)


def _named_volumes(body: Mapping[str, Any]) -> list[str]:
    host = body.get("HostConfig") or {}
    names = [bind.split(":", 1)[0] for bind in host.get("Binds") or [] if not str(bind).startswith("/")]
    names += [str(m["Source"]) for m in host.get("Mounts") or [] if m.get("Type") == "volume" and m.get("Source")]
    return [name for name in names if name]


def _prepare_volumes(api: APIClient, body: Mapping[str, Any], managed: ManagedScope) -> None:
    """Named volumes the engine would create on the fly are created here, labelled as the runner's;
    an existing volume outside the runner's scope does not exist for this request."""
    labels = {MANAGED_LABEL: "true", INSTANCE_LABEL: str(body["Labels"].get(INSTANCE_LABEL, ""))}
    for name in _named_volumes(body):
        existing = volume_labels(api, name)
        if existing is None:
            api.create_volume(name, labels=labels)
        elif managed.managed_only and not is_managed(existing):
            raise from_engine(404, f"get {name}: no such volume")


def _create_and_start(
    api: APIClient,
    body: dict[str, Any],
    name: str | None,
    platform: str | None,
    managed: ManagedScope,
    orphaned: Callable[[str], None],
) -> dict[str, Any]:
    _prepare_volumes(api, body, managed)
    created = api.create_container_from_config(body, name=name, platform=platform)
    container_id = str(created["Id"])
    labels = body.get("Labels")
    managed.remember(container_id, labels.get(FAST_EXEC_LABEL) if isinstance(labels, dict) else None)
    try:
        api.start(container_id)
    except Exception:
        remove_or_queue(api, container_id, orphaned)
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


async def create_and_start(
    engine: Engine,
    checker: CreateChecker,
    managed: ManagedScope,
    body: dict[str, Any],
    name: str | None = None,
    platform: str | None = None,
) -> dict[str, Any]:
    """Check ``body`` against the policy (filling in its ceilings), then create and start it."""
    checked = checker.check(body)
    # a namespace, link or VolumesFrom the policy allows may still name only the runner's containers
    for _field, reference in container_references(checked):
        await managed.container(reference)
    orphaned = engine.removals.later
    return await engine.run(lambda api: _create_and_start(api, checked, name, platform, managed, orphaned))


async def stop(engine: Engine, managed: ManagedScope, reference: str, timeout_sec: int) -> None:
    try:
        container_id = await managed.container(reference)
        await engine.run(lambda api: api.stop(container_id, timeout=timeout_sec))
    except ApiError as error:
        if error.kind not in _STOP_IS_DONE and error.code != "not_modified":
            raise


async def remove(engine: Engine, managed: ManagedScope, reference: str, force: bool, remove_volumes: bool) -> str:
    """Remove the container; the id it had (the reference itself when it named nothing)."""
    container_id = reference
    try:
        container_id = await managed.container(reference)
        await engine.run(lambda api: api.remove_container(container_id, force=force, v=remove_volumes))
    except ApiError as error:
        if error.kind is not Kind.NOT_FOUND and error.code != "removal_in_progress":
            raise
    managed.forget(reference)
    managed.forget(container_id)
    return container_id


async def inspect(engine: Engine, managed: ManagedScope, reference: str) -> dict[str, Any]:
    checked_container(reference)
    document: dict[str, Any] = await engine.run(lambda api: api.inspect_container(reference))
    managed.check_inspected(reference, document)
    return document


async def labels(engine: Engine, managed: ManagedScope, reference: str) -> dict[str, str]:
    document = await inspect(engine, managed, reference)
    return dict(document.get("Config", {}).get("Labels") or {})


async def networks(engine: Engine, managed: ManagedScope, reference: str) -> list[str]:
    document = await inspect(engine, managed, reference)
    return sorted((document.get("NetworkSettings", {}).get("Networks") or {}).keys())


def _ids_by_creation(listed: list[dict[str, Any]]) -> list[str]:
    ordered = sorted(listed, key=lambda item: (int(item.get("Created", 0)), str(item["Id"])))
    return [str(item["Id"]) for item in ordered]


async def find_by_labels(
    engine: Engine, managed: ManagedScope, wanted: Mapping[str, str], include_stopped: bool
) -> list[str]:
    filters = {"label": [f"{key}={value}" for key, value in wanted.items()] + managed.label_filters()}
    listed = await engine.run(lambda api: api.containers(all=include_stopped, filters=filters))
    return _ids_by_creation(listed)


async def list_by_volume(engine: Engine, managed: ManagedScope, volume_name: str) -> list[str]:
    try:
        await managed.volume(volume_name)
    except ApiError as error:
        if error.kind is Kind.NOT_FOUND:
            return []  # no such volume (or not the runner's): nothing uses it
        raise
    filters: dict[str, Any] = {"volume": volume_name, "label": managed.label_filters()}
    listed = await engine.run(lambda api: api.containers(all=True, filters=filters))
    return _ids_by_creation(listed)


async def remove_volume(engine: Engine, managed: ManagedScope, volume_name: str, force: bool) -> None:
    """Idempotent, as container removal is: a volume already gone (or never the runner's) is done."""
    try:
        await managed.volume(volume_name)
        await engine.run(lambda api: api.remove_volume(volume_name, force=force))
    except ApiError as error:
        if error.kind is not Kind.NOT_FOUND:
            raise
