"""Which containers and volumes the runner may touch.

By default only what it created (label ``dev.docker-runner.managed=true``): anything else answers
404 as if it did not exist. ``DOCKER_RUNNER_SCOPE=all`` lifts this for operators who need it.
Full ids already seen to be managed are remembered (ids are never reused, and labels never change),
so the common case of a client using the id it got from ``start`` costs no extra engine call: an
exec's own create then answers 404 for a container that is gone and 409 for one that is stopped.
Names and short ids are resolved by an inspect each time (a name can be given to another
container). The memory is bounded (least recently used first out), and a container is forgotten when
the runner removes it or when an exec's own create finds it gone (404).
"""

from __future__ import annotations

import re
from collections import OrderedDict
from typing import Any

from ..engine.core import Engine
from ..errors import ApiError, Kind, from_engine
from .spec import FAST_EXEC_LABEL, MANAGED_LABEL

_FULL_ID = re.compile(r"^[0-9a-f]{64}$")
# what the engine accepts as a container or volume name, id or id prefix, and an exec id: anything
# else ("." or "../images") would be spliced into the engine's URL path and reach another endpoint
_REFERENCE = re.compile(r"^/?[A-Za-z0-9][A-Za-z0-9_.-]*$")
KNOWN_IDS_KEPT = 100_000


def not_found_container(reference: str) -> ApiError:
    return from_engine(404, f"No such container: {reference}")


def checked_container(reference: str) -> str:
    """The reference, when it can only name a container; 404 (as if there were none) otherwise."""
    if not _REFERENCE.match(reference):
        raise not_found_container(reference)
    return reference


def is_managed(labels: Any) -> bool:
    return isinstance(labels, dict) and labels.get(MANAGED_LABEL) == "true"


class ManagedScope:
    def __init__(self, engine: Engine, managed_only: bool) -> None:
        self._engine = engine
        self.managed_only = managed_only
        # full id -> its fast-exec label ("true", "false" or None): labels never change either
        self._known: OrderedDict[str, str | None] = OrderedDict()

    def remember(self, container_id: str, fast_exec: str | None = None) -> None:
        self._known[container_id] = fast_exec
        self._known.move_to_end(container_id)
        while len(self._known) > KNOWN_IDS_KEPT:
            self._known.popitem(last=False)

    def forget(self, container_id: str) -> None:
        """The container is gone: its verdict is no longer needed (ids are never reused)."""
        self._known.pop(container_id, None)

    def label_filters(self) -> list[str]:
        """Label filters that keep listings and event streams to the runner's own containers."""
        return [f"{MANAGED_LABEL}=true"] if self.managed_only else []

    async def container(self, reference: str) -> str:
        """The reference, once it is known to name a container in scope; 404 otherwise."""
        checked_container(reference)
        if not self.managed_only:
            return reference
        if reference in self._known:
            self._known.move_to_end(reference)
            return reference
        document = await self._engine.run(lambda api: api.inspect_container(reference))
        return self.check_inspected(reference, document)

    def check_inspected(self, reference: str, document: dict[str, Any]) -> str:
        """For a caller that has the inspect document already: is it in scope?"""
        labels = (document.get("Config") or {}).get("Labels")
        if self.managed_only and not is_managed(labels):
            raise not_found_container(reference)
        container_id = str(document["Id"])
        if self.managed_only:
            self.remember(container_id, _fast_exec_label(labels))
        return container_id

    async def exec_target(self, reference: str) -> tuple[str, str | None]:
        """(the container's full id, its fast-exec label) once it is known to be in scope; 404
        otherwise. A known full id costs nothing; anything else is inspected (in either scope)."""
        checked_container(reference)
        if reference in self._known:
            self._known.move_to_end(reference)
            return reference, self._known[reference]
        document = await self._engine.run(lambda api: api.inspect_container(reference))
        container_id = self.check_inspected(reference, document)
        fast_exec = _fast_exec_label((document.get("Config") or {}).get("Labels"))
        self.remember(container_id, fast_exec)
        return container_id, fast_exec

    async def exec_instance(self, exec_id: str) -> None:
        """An exec id is in scope when its container is."""
        if not _REFERENCE.match(exec_id):
            raise from_engine(404, f"No such exec instance: {exec_id}")
        if not self.managed_only:
            return
        state = await self._engine.run(lambda api: api.exec_inspect(exec_id))
        container_id = str(state.get("ContainerID") or "")
        try:
            await self.container(container_id)
        except ApiError as error:
            if error.kind is Kind.NOT_FOUND:
                raise from_engine(404, f"No such exec instance: {exec_id}") from None
            raise

    async def volume(self, name: str) -> None:
        if not _REFERENCE.match(name):
            raise from_engine(404, f"get {name}: no such volume")
        if not self.managed_only:
            return
        document = await self._engine.run(lambda api: api.inspect_volume(name))
        if not is_managed(document.get("Labels")):
            raise from_engine(404, f"get {name}: no such volume")


def _fast_exec_label(labels: Any) -> str | None:
    value = labels.get(FAST_EXEC_LABEL) if isinstance(labels, dict) else None
    return value if isinstance(value, str) else None
