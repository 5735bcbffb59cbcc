"""Processes inside a container, seen through the engine directly (behind the runner's back)."""

from __future__ import annotations

import docker


def processes(api: docker.APIClient, container_id: str) -> str:
    created = api.exec_create(container_id, ["ps", "-o", "pid,stat,args"])
    return str(api.exec_start(created["Id"]).decode())
