"""Placement by Swarm: a container started in cluster mode is a one-replica service, and Swarm picks
its node (by resources, constraints and preferences, among the nodes that are up).

On a manager's engine: create the service, then wait for its task's container and node (polling
the task, a few ms apart), or answer why it cannot run: 503 ``no_capacity`` (retryable) with
Swarm's own reason when no node fits within ``DOCKER_RUNNER_PLACEMENT_TIMEOUT_MS``, or the
engine's error when the task was rejected (a missing image, say). A service whose task never ran
is removed again. Removal removes the service and waits for its container to go.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from dataclasses import dataclass
from typing import Any

from ..containers.spec import MANAGED_LABEL
from ..engine.core import Engine
from ..engine.swarm import TASK_ENDED, TaskView, create_service, remove_service, service_tasks
from ..errors import ApiError, Kind, engine_code, passed_through

POLL_SECONDS = (0.02, 0.05)  # first and longest pause between looks at a new task (Swarm: 0.4-0.6 s to run)
REMOVE_WAIT_SECONDS = 20.0


@dataclass(frozen=True)
class Placed:
    container_id: str
    node_id: str
    service_id: str
    name: str


def no_capacity(reason: str) -> ApiError:
    return ApiError(
        Kind.UNAVAILABLE,
        "no_capacity",
        f"No node can run the container now: {reason}",
        retryable=True,
        details={"reason": reason},
    )


def service_name(requested: str | None) -> str:
    return requested or f"dr-{uuid.uuid4().hex[:16]}"


def _leaderless(error: ApiError) -> ApiError | None:
    """The Swarm has no leader now (a lost manager, an election under way): a retryable 503."""
    if "does not have a leader" not in error.message and "DeadlineExceeded" not in error.message:
        return None
    return ApiError(
        Kind.UNAVAILABLE,
        "no_swarm_leader",
        f"The Swarm has no leader now, so nothing can be placed; retry shortly ({error.message})",
        retryable=True,
    )


def _rejected(task: TaskView) -> ApiError:
    """A task that ended before it ran: the engine's reason, as the single-host start would answer it."""
    message = task.error or task.message or f"the task ended {task.state}"
    status = 404 if "no such image" in message.lower() else 400
    return passed_through(status, engine_code(status, message), message)


async def place(engine: Engine, spec: dict[str, Any], timeout_seconds: float) -> Placed:
    """Create the service of ``spec`` and wait for its container to run (or remove it and say why)."""
    try:
        service_id = await engine.run(lambda api: create_service(api, spec))
    except ApiError as error:
        raise _leaderless(error) or error from error
    try:
        task = await _running_task(engine, service_id, timeout_seconds)
    except BaseException:
        await asyncio.shield(_remove_quietly(engine, service_id))
        raise
    return Placed(task.container_id, task.node_id, service_id, str(spec.get("Name") or ""))


async def _running_task(engine: Engine, service_id: str, timeout_seconds: float) -> TaskView:
    deadline = time.monotonic() + timeout_seconds
    pause, longest = POLL_SECONDS
    last: TaskView | None = None
    while True:
        tasks = await engine.run(lambda api: service_tasks(api, service_id))
        for task in tasks:
            if task.state == "running" and task.container_id and task.node_id:
                return task
            if task.state in TASK_ENDED or task.state == "rejected":
                raise _rejected(task)
            last = task
        if time.monotonic() >= deadline:
            raise no_capacity(_why_pending(last))
        await asyncio.sleep(pause)
        pause = min(pause * 2, longest)


def _why_pending(task: TaskView | None) -> str:
    if task is None:
        return "Swarm made no task for the service"
    return task.error or task.message or f"the task is still {task.state}"


async def _remove_quietly(engine: Engine, service_id: str) -> None:
    # the engine away: the service has no task that runs, and the start-up sweep is the net
    with contextlib.suppress(ApiError):
        await engine.run(lambda api: remove_service(api, service_id))


def _owned(api: Any, service_id: str) -> bool:
    """Is it a service the runner placed (its label)? Only those may be removed through the runner."""
    try:
        labels = (api.inspect_service(service_id).get("Spec") or {}).get("Labels") or {}
    except Exception as exc:  # docker-py's NotFound: gone already
        if getattr(getattr(exc, "response", None), "status_code", None) == 404:
            return False
        raise
    return labels.get(MANAGED_LABEL) == "true"


async def remove(engine: Engine, service_id: str) -> None:
    """Remove the service, then wait (bounded) until none of its tasks has a container that runs."""
    if not await engine.run(lambda api: _owned(api, service_id)):
        return  # gone already, or not the runner's: nothing to do for this request
    if not await engine.run(lambda api: remove_service(api, service_id)):
        return
    deadline = time.monotonic() + REMOVE_WAIT_SECONDS
    while time.monotonic() < deadline:
        try:
            tasks = await engine.run(lambda api: service_tasks(api, service_id))
        except ApiError as error:
            if error.kind is Kind.NOT_FOUND:
                return
            raise
        if not tasks:
            return
        await asyncio.sleep(0.1)
