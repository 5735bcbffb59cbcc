"""The blocking side of a job: its container created with stdin attached before it starts, so that
nothing it prints is missed; the attach stream is then relayed by the one pump (``pump.Pump``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..engine.core import APIClient
from ..engine.removals import create_own, remove_or_queue
from ..engine.sockets import Attached


def create_attached(api: APIClient, body: dict[str, Any], orphaned: Callable[[str], None]) -> tuple[str, Attached]:
    """Create the container and attach to its stdin, stdout and stderr before it starts; one whose
    attach fails is removed again, now or later through ``orphaned`` (the removal queue)."""
    container_id = create_own(api, body, "job", orphaned)
    try:
        return container_id, Attached(api, container_id)
    except BaseException:
        remove_or_queue(api, container_id, orphaned)
        raise
