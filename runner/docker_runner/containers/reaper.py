"""TTL reaping: managed containers created with ``ttlSeconds`` are removed once untouched that long.

Last use lives in memory, and a running exec counts as use; a container the runner has no record
of (it restarted) counts as used when the runner started, so a restart delays reaping by at most
one TTL and never reaps early.
Each runner reaps only the containers labelled with its own instance name
(``DOCKER_RUNNER_INSTANCE``), which a restart keeps. ``GET /v1/containers`` [ext] lists the
managed containers with what is left of each TTL, as this runner counts it.
"""

from __future__ import annotations

import functools
import logging
import math
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import anyio

from ..engine.core import APIClient, Engine
from .spec import INSTANCE_LABEL, MANAGED_LABEL, TTL_LABEL

log = logging.getLogger("docker_runner.reaper")


class TouchLog:
    """When each container was last used (wall-clock seconds), by full container id."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self.started_at = clock()
        self._last_use: dict[str, float] = {}

    def touch(self, container_id: str) -> None:
        self._last_use[container_id] = self._clock()

    def last_use(self, container_id: str, created_at: float) -> float:
        return self._last_use.get(container_id, max(self.started_at, created_at))

    def forget(self, container_id: str) -> None:
        self._last_use.pop(container_id, None)

    def keep_only(self, container_ids: Iterable[str]) -> None:
        """Drop the records of containers that are gone or carry no TTL: the log stays as small as
        the set of containers it can still reap."""
        keep = set(container_ids)
        for container_id in [known for known in self._last_use if known not in keep]:
            del self._last_use[container_id]

    def __contains__(self, container_id: object) -> bool:
        return container_id in self._last_use

    def now(self) -> float:
        return self._clock()


def ttl_seconds(labels: Mapping[str, str] | None) -> int | None:
    """The TTL a container was created with (its label), or None when it has none."""
    try:
        return int((labels or {})[TTL_LABEL])
    except (KeyError, ValueError):
        return None


def seconds_left(item: Mapping[str, Any], touches: TouchLog) -> float | None:
    """Seconds until a listed container's TTL passes (0 or less: due), None without a TTL (pure)."""
    ttl = ttl_seconds(item.get("Labels"))
    if ttl is None:
        return None
    last_use = touches.last_use(str(item["Id"]), float(item.get("Created", 0)))
    return ttl - (touches.now() - last_use)


def expired_ids(listed: Iterable[Mapping[str, Any]], touches: TouchLog) -> list[str]:
    """Containers whose TTL has passed since their last use (pure)."""
    expired = []
    for item in listed:
        left = seconds_left(item, touches)
        if left is not None and left <= 0:
            expired.append(str(item["Id"]))
    return expired


@dataclass(frozen=True)
class ListedContainer:
    """A managed container as ``GET /v1/containers`` [ext] answers it. ``ttl_left_seconds`` is what
    this runner knows: None without a TTL, or for another instance's container (its runner keeps
    the last use)."""

    container_id: str
    name: str
    image: str
    status: str
    created_at: int  # epoch ms
    labels: dict[str, str]
    ttl_seconds: int | None
    ttl_left_seconds: int | None


def listed_container(item: Mapping[str, Any], touches: TouchLog, instance: str) -> ListedContainer:
    """One engine listing entry with its TTL left (pure)."""
    labels = {str(key): str(value) for key, value in (item.get("Labels") or {}).items()}
    left = seconds_left(item, touches) if labels.get(INSTANCE_LABEL) == instance else None
    names = item.get("Names") or []
    return ListedContainer(
        container_id=str(item["Id"]),
        name=str(names[0]).lstrip("/") if names else "",
        image=str(item.get("Image", "")),
        status=str(item.get("State", "")),
        created_at=int(item.get("Created", 0)) * 1000,
        labels=labels,
        ttl_seconds=ttl_seconds(labels),
        ttl_left_seconds=None if left is None else max(0, math.ceil(left)),
    )


async def list_containers(
    engine: Engine, touches: TouchLog, instance: str, label_filters: list[str], include_stopped: bool
) -> list[ListedContainer]:
    """The containers matching ``label_filters`` (the scope's and the caller's), oldest first."""
    filters = {"label": label_filters} if label_filters else {}
    listed = await engine.run(lambda api: api.containers(all=include_stopped, filters=filters))
    ordered = sorted(listed, key=lambda item: (int(item.get("Created", 0)), str(item["Id"])))
    return [listed_container(item, touches, instance) for item in ordered]


def _remove(api: APIClient, container_id: str) -> None:
    api.remove_container(container_id, force=True, v=True)


def _runs_an_exec(api: APIClient, container_id: str) -> bool:
    """Is a command running in the container right now (an exec run, a terminal)? That is use."""
    for exec_id in api.inspect_container(container_id).get("ExecIDs") or []:
        try:
            if api.exec_inspect(exec_id).get("Running"):
                return True
        except Exception as exc:
            if getattr(exc, "status_code", None) != 404:
                return True  # in doubt, not this round
    return False


Removal = Callable[[str], Awaitable[bool]]  # a removal of its own (True: done), e.g. a placed container's service


async def reap_once(engine: Engine, touches: TouchLog, instance: str, removal: Removal | None = None) -> list[str]:
    # Only this runner's containers: another runner on the same engine keeps its own touches.
    filters = {"label": [f"{MANAGED_LABEL}=true", f"{INSTANCE_LABEL}={instance}", TTL_LABEL]}
    listed = await engine.run(lambda api: api.containers(all=True, filters=filters))
    touches.keep_only(str(item["Id"]) for item in listed)
    removed = []
    for container_id in expired_ids(listed, touches):
        try:
            if await engine.run(functools.partial(_runs_an_exec, container_id=container_id)):
                touches.touch(container_id)
                continue
            if removal is None or not await removal(container_id):
                await engine.run(functools.partial(_remove, container_id=container_id))
        except Exception as exc:  # gone already, or the engine is away: the next round tries again
            log.info("reaper could not remove %s: %s", container_id[:12], exc)
            continue
        touches.forget(container_id)
        removed.append(container_id)
        log.info("reaped container %s after its TTL", container_id[:12])
    return removed


async def reap_forever(
    engine: Engine, touches: TouchLog, instance: str, interval_seconds: float, removal: Removal | None = None
) -> None:
    while True:
        try:
            await reap_once(engine, touches, instance, removal)
        except Exception as exc:
            log.debug("reaper round failed: %s", exc)
        await anyio.sleep(interval_seconds)
