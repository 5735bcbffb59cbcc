"""TTL reaping: managed containers created with ``ttlSeconds`` are removed once untouched that long.

Last use lives in memory, and a running exec counts as use; a container the runner has no record
of (it restarted) counts as used when the runner started, so a restart delays reaping by at most
one TTL and never reaps early.
Each runner reaps only the containers labelled with its own instance name
(``DOCKER_RUNNER_INSTANCE``), which a restart keeps.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import anyio

from .container_spec import INSTANCE_LABEL, MANAGED_LABEL, TTL_LABEL
from .engine import APIClient, Engine

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


def expired_ids(listed: Iterable[Mapping[str, Any]], touches: TouchLog) -> list[str]:
    """Containers whose TTL has passed since their last use (pure)."""
    now = touches.now()
    expired = []
    for item in listed:
        try:
            ttl = int((item.get("Labels") or {})[TTL_LABEL])
        except (KeyError, ValueError):
            continue
        container_id = str(item["Id"])
        if now - touches.last_use(container_id, float(item.get("Created", 0))) >= ttl:
            expired.append(container_id)
    return expired


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


async def reap_once(engine: Engine, touches: TouchLog, instance: str) -> list[str]:
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
            await engine.run(functools.partial(_remove, container_id=container_id))
        except Exception as exc:  # gone already, or the engine is away: the next round tries again
            log.info("reaper could not remove %s: %s", container_id[:12], exc)
            continue
        touches.forget(container_id)
        removed.append(container_id)
        log.info("reaped container %s after its TTL", container_id[:12])
    return removed


async def reap_forever(engine: Engine, touches: TouchLog, instance: str, interval_seconds: float) -> None:
    while True:
        try:
            await reap_once(engine, touches, instance)
        except Exception as exc:
            log.debug("reaper round failed: %s", exc)
        await anyio.sleep(interval_seconds)
