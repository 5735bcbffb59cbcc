"""The blocking side of a job: its container created with stdin attached before it starts, so that
nothing it prints is missed; the attach stream is then relayed by the one pump (``pump.Pump``)."""

from __future__ import annotations

from typing import Any

from .engine import APIClient, remove_if_present
from .sockets import Attached


def create_attached(api: APIClient, body: dict[str, Any]) -> tuple[str, Attached]:
    """Create the container and attach to its stdin, stdout and stderr before it starts."""
    container_id = str(api.create_container_from_config(body)["Id"])
    try:
        return container_id, Attached(api, container_id)
    except BaseException:
        remove_if_present(api, container_id)
        raise
