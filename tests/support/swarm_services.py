"""Swarm services for cluster tests: one labelled replica, its running task, the containers a session left."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

import docker
import docker.errors
from docker.types import ContainerSpec, EndpointSpec, Placement, RestartPolicy, TaskTemplate

from tests.support.docker_env import SESSION_ID, SESSION_LABEL, SESSION_LABELS, TEST_IMAGE
from tests.support.swarm_bed import SwarmBed
from tests.support.waiting import wait_for

# busybox sleep ignores SIGTERM: each stop (service removal, an engine coming back) would take 10 s
STOPS_ON_TERM = ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"]
_ENDED = {"complete", "shutdown", "failed", "rejected", "orphaned", "remove"}


@dataclass(frozen=True)
class RunningTask:
    service_id: str
    task_id: str
    node_id: str  # the Swarm node ID (BedNode.swarm_node_id)
    container_id: str


def sweep_session_services(bed: SwarmBed) -> None:
    """Remove every service this test session labelled (what a test that failed half-way left)."""
    manager = bed.manager.api()
    try:
        for service in manager.services(filters={"label": SESSION_LABEL}):
            with suppress(docker.errors.NotFound):
                manager.remove_service(service["ID"])
    finally:
        manager.close()


def service_name(purpose: str) -> str:
    return f"drbed-{SESSION_ID}-{purpose}"


@contextmanager
def one_replica_service(
    manager: docker.APIClient,
    purpose: str,
    *,
    command: Sequence[str] = STOPS_ON_TERM,
    constraints: Sequence[str] = (),
    networks: Sequence[str] = (),
    endpoint_mode: str | None = None,
) -> Iterator[str]:
    """A one-replica service that is never restarted, labelled for this session; removed afterwards."""
    spec = ContainerSpec(TEST_IMAGE, command=list(command), labels=dict(SESSION_LABELS), stop_grace_period=10**9)
    template = TaskTemplate(
        spec,
        restart_policy=RestartPolicy(condition="none"),
        placement=Placement(constraints=list(constraints)),
        networks=list(networks),
    )
    created = manager.create_service(
        template,
        name=service_name(purpose),
        labels=dict(SESSION_LABELS),
        endpoint_spec=EndpointSpec(mode=endpoint_mode) if endpoint_mode else None,
    )
    service_id = str(created["ID"])
    try:
        yield service_id
    finally:
        with suppress(docker.errors.NotFound):
            manager.remove_service(service_id)


def running_task(manager: docker.APIClient, service_id: str, timeout: float = 30) -> RunningTask:
    """The service's task once it runs; fails early when it ended, naming the task's error."""
    last: list[dict[str, Any]] = []

    def check() -> RunningTask | None:
        last[:] = manager.tasks(filters={"service": service_id})
        for task in last:
            status = task["Status"]
            if status["State"] == "running":
                container_id = status["ContainerStatus"]["ContainerID"]
                return RunningTask(service_id, task["ID"], task["NodeID"], container_id)
            if status["State"] in _ENDED:
                raise AssertionError(f"task {task['ID']} ended {status['State']}: {status.get('Err')}")
        return None

    try:
        task = wait_for(check, timeout=timeout, interval=0.1, what=f"a running task of service {service_id}")
    except AssertionError as exc:
        errors = [task["Status"].get("Err") for task in last]
        raise AssertionError(f"{exc}; task errors: {errors}") from None
    assert task is not None  # wait_for returns truthy values only
    return task


def session_containers(engine: docker.APIClient) -> list[dict[str, Any]]:
    """Every container on this engine, running or not, that this test session labelled."""
    found: list[dict[str, Any]] = engine.containers(all=True, filters={"label": f"{SESSION_LABEL}={SESSION_ID}"})
    return found
