"""The engine's Swarm side, as the cluster mode asks it (blocking; called through ``Engine.run``).

Only a manager's engine answers the Swarm calls (services, tasks, nodes); a worker's answers 503
"This node is not a swarm manager", which reaches the caller as that error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .core import APIClient

# task states after which a task never runs (again)
TASK_ENDED = frozenset({"complete", "shutdown", "failed", "rejected", "orphaned", "remove"})
SERVICE_LABEL = "com.docker.swarm.service.id"  # on a task's container, beside the runner's own labels


@dataclass(frozen=True)
class LocalNode:
    """This engine's place in the Swarm."""

    node_id: str
    hostname: str
    manager: bool
    active: bool  # the engine is part of a Swarm at all


def local_node(api: APIClient) -> LocalNode:
    info = api.info()
    swarm = info.get("Swarm") or {}
    return LocalNode(
        node_id=str(swarm.get("NodeID") or ""),
        hostname=str(info.get("Name") or ""),
        manager=bool(swarm.get("ControlAvailable")),
        active=swarm.get("LocalNodeState") == "active",
    )


@dataclass(frozen=True)
class TaskView:
    """What Swarm says of a service's task: where it runs, as what container, in which state."""

    task_id: str
    service_id: str
    node_id: str
    container_id: str
    state: str
    desired: str
    error: str
    message: str
    changed_at: float = 0.0  # epoch seconds of its last state change (0: not said)


_STAMP = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$")


def epoch_of(stamp: str) -> float:
    """Swarm's RFC 3339 time (nanoseconds, which ``fromisoformat`` refuses) as epoch seconds; 0 if unreadable."""
    found = _STAMP.match(stamp)
    if found is None:
        return 0.0
    zone = "+00:00" if found[3] == "Z" else found[3]
    return datetime.fromisoformat(found[1] + zone).timestamp() + float("0." + (found[2] or "0"))


def _task(item: dict[str, Any]) -> TaskView:
    status = item.get("Status") or {}
    container = status.get("ContainerStatus") or {}
    return TaskView(
        task_id=str(item.get("ID") or ""),
        service_id=str(item.get("ServiceID") or ""),
        node_id=str(item.get("NodeID") or ""),
        container_id=str(container.get("ContainerID") or ""),
        state=str(status.get("State") or ""),
        desired=str(item.get("DesiredState") or ""),
        error=str(status.get("Err") or ""),
        message=str(status.get("Message") or ""),
        changed_at=epoch_of(str(status.get("Timestamp") or "")),
    )


def create_service(api: APIClient, spec: dict[str, Any]) -> str:
    """Create the service of ``spec`` (the API's own form); its id."""
    created = api.create_service(
        spec["TaskTemplate"], name=spec.get("Name"), labels=spec.get("Labels"), mode=spec.get("Mode")
    )
    return str(created["ID"])


def service_tasks(api: APIClient, service_id: str) -> list[TaskView]:
    return [_task(item) for item in api.tasks(filters={"service": service_id})]


def tasks_labelled(api: APIClient, label: str) -> list[TaskView]:
    """The tasks of every service carrying ``label`` (``key=value`` or ``key``), whatever their state."""
    services = api.services(filters={"label": label})
    ids = [str(service["ID"]) for service in services]
    return [task for service_id in ids for task in service_tasks(api, service_id)]


def services_labelled(api: APIClient, labels: list[str]) -> list[dict[str, Any]]:
    return list(api.services(filters={"label": labels}))


def remove_service(api: APIClient, service_id: str) -> bool:
    """Remove a service; False when it was gone already."""
    try:
        api.remove_service(service_id)
    except Exception as exc:  # docker-py's NotFound: the engine's 404 for a service removed meanwhile
        if getattr(getattr(exc, "response", None), "status_code", None) == 404:
            return False
        raise
    return True


def nodes(api: APIClient) -> list[dict[str, Any]]:
    return list(api.nodes())
