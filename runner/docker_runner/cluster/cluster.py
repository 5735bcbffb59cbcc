"""The cluster as one runner sees it: its own Swarm node, where a container is, placement and
removal through a manager, and the nodes with their runners.

Where a container is comes from facts, never guesses: this node's engine (a local inspect), then
Swarm (a manager's task list: the task's node and container), kept in a bounded memory per full
container id (an id names one container for its life). A worker's engine refuses every Swarm
call, so a worker asks a manager's runner what Swarm knows (``GET /v1/cluster/locate``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote, urlencode

import msgspec

from ..containers.create_body import normalize_create_body
from ..containers.managed import not_found_container
from ..containers.spec import INSTANCE_LABEL, MANAGED_LABEL, ONESHOT_LABEL, ContainerOpts
from ..engine.core import Engine
from ..engine.sockets import Attached
from ..engine.swarm import (
    SERVICE_LABEL,
    TASK_ENDED,
    LocalNode,
    TaskView,
    local_node,
    nodes,
    service_tasks,
    services_labelled,
)
from ..errors import ApiError, Kind, docker_unavailable
from ..policy.checker import CreateChecker
from ..settings import Settings
from . import placement
from .forward import Forwarder
from .peers import Peer, Peers, node_unavailable
from .spec import AUTO_REMOVE_LABEL, FOLLOWED_LABEL, check_expressible, service_spec

REMEMBERED = 100_000
TIDY_SECONDS = 2.0
FOLLOWED_GRACE_SECONDS = 60.0  # a followed service's task ended this long ago: its runner is gone
LOCAL_TTL_SECONDS = 5.0
LOCAL_LOOK_SECONDS = 1.0


def not_a_manager() -> ApiError:
    return ApiError(
        Kind.UNAVAILABLE,
        "no_manager",
        "No Swarm manager's runner answers: placement needs one (retry shortly)",
        retryable=True,
    )


class Cluster:
    def __init__(self, engine: Engine, settings: Settings) -> None:
        self._engine = engine
        self._settings = settings
        self.peers = Peers(settings.peers, settings.port, settings.shared_secret, settings.peer_timeout_ms / 1000)
        self.forwarder = Forwarder(
            self.peers.client,
            settings.shared_secret,
            engine.stream_limiter,
            settings.peer_timeout_ms / 1000,
            healthy=self.peers.healthy,
        )
        self._look = settings.peer_timeout_ms / 1000  # a short call to a peer
        self._local: LocalNode | None = None
        self._local_at = 0.0
        self._where: OrderedDict[str, str] = OrderedDict()  # full container id -> node id
        self._execs: OrderedDict[str, str] = OrderedDict()  # exec id -> node id
        self._jobs: OrderedDict[str, str] = OrderedDict()  # job id -> node id

    async def local(self) -> LocalNode:
        """This engine's node, looked at again every LOCAL_TTL_SECONDS (a worker may be promoted).
        A manager's engine answers slowly while the Swarm elects a leader: the last answer is used
        meanwhile (the node id never changes)."""
        if self._local is not None and time.monotonic() - self._local_at <= LOCAL_TTL_SECONDS:
            return self._local
        try:
            node = await asyncio.wait_for(self._engine.run(local_node), LOCAL_LOOK_SECONDS)
        except (TimeoutError, ApiError):
            if self._local is None:
                raise
            self._local_at = time.monotonic()  # look again later, and answer with what is known
            return self._local
        if not node.active:
            raise docker_unavailable("the engine is not part of a Swarm (DOCKER_RUNNER_CLUSTER=swarm)")
        self._local, self._local_at = node, time.monotonic()
        return self._local

    def remember(self, container_id: str, node_id: str) -> None:
        _remember(self._where, container_id, node_id)

    def remember_exec(self, exec_id: str, node_id: str) -> None:
        _remember(self._execs, exec_id, node_id)

    def forget(self, container_id: str) -> None:
        self._where.pop(container_id, None)

    async def peer(self, node_id: str) -> Peer:
        found = await self.peers.of_node(node_id)
        if found is None:
            raise node_unavailable(node_id, "no runner of the cluster serves it")
        return found

    async def a_manager(self) -> Peer:
        local = await self.local()
        manager = await self.peers.a_manager(exclude=local.node_id)
        if manager is None:
            raise not_a_manager()
        return manager

    async def locate(self, reference: str) -> str | None:
        """The node of the container ``reference`` names, when it is not this one; None when it is
        here, or nowhere (the handler then answers as it would without a cluster)."""
        local = await self.local()
        node = self._where.get(reference)
        if node is None:
            node, container_id = await self._find(reference, local)
            if node is not None and container_id:
                self.remember(container_id, node)
        return None if node in (None, local.node_id) else node

    async def _find(self, reference: str, local: LocalNode) -> tuple[str | None, str]:
        try:
            document = await self._engine.run(lambda api: api.inspect_container(reference))
            return local.node_id, str(document["Id"])
        except ApiError as error:
            if error.kind is not Kind.NOT_FOUND:
                raise
        try:
            if local.manager:
                # while a leader is elected Swarm's answers wait: the nodes themselves answer meanwhile
                try:
                    found = await asyncio.wait_for(
                        self.locate_in_swarm(reference), self._settings.peer_timeout_ms / 1000
                    )
                except TimeoutError:
                    raise docker_unavailable("Swarm does not answer now") from None
                node, container_id = (found.node_id, found.container_id) if found is not None else (None, "")
            else:
                node, container_id = await self._ask_a_manager(reference)
        except ApiError as swarm_error:
            if swarm_error.kind not in (Kind.UNAVAILABLE, Kind.UPSTREAM):
                raise
            node, container_id = None, ""  # Swarm cannot say now (no leader, say): the nodes can
        if node is None:
            return await self._ask_every_node(reference, local)
        return node, container_id

    async def _ask_every_node(self, reference: str, local: LocalNode) -> tuple[str | None, str]:
        """The node whose own engine has the container (a container Swarm did not place, or Swarm
        cannot answer): each other runner is asked for its own view, at once."""
        peers = [p for n, p in (await self.peers.known()).items() if n != local.node_id and self.peers.healthy(n)]
        target = "/v1/containers/inspect?" + _query(containerId=reference)

        async def ask(peer: Peer) -> tuple[str, str] | None:
            try:
                document = await self.peers.get_json(peer.url, target)
            except Exception:  # not there (404), or that runner cannot say: another may
                return None
            return peer.node_id, str(document["Id"])

        for found in await asyncio.gather(*(ask(peer) for peer in peers)):
            if found is not None:
                return found
        return None, ""

    async def _ask_a_manager(self, reference: str) -> tuple[str | None, str]:
        manager = await self.a_manager()
        try:
            answer = await self.peers.get_json(manager.url, "/v1/cluster/locate?" + _query(containerId=reference))
        except ApiError as error:
            if error.kind is Kind.NOT_FOUND:
                return None, ""
            raise
        return str(answer["nodeId"]), str(answer["containerId"])

    async def locate_in_swarm(self, reference: str) -> TaskView | None:
        """The task whose container ``reference`` names (full id, id prefix or service name), per Swarm."""

        def find(api: Any) -> TaskView | None:
            services = services_labelled(api, [f"{MANAGED_LABEL}=true"])
            names = {str(s["ID"]): str((s.get("Spec") or {}).get("Name") or "") for s in services}
            for service_id, name in names.items():
                for task in service_tasks(api, service_id):
                    if task.container_id and _names(reference, task.container_id, name):
                        return task
            return None

        return await self._engine.run(find)

    async def node_of_exec(self, exec_id: str) -> str | None:
        local = await self.local()
        node = self._execs.get(exec_id)
        return None if node in (None, local.node_id) else node

    async def start(self, opts: ContainerOpts, body: dict[str, Any], checker: CreateChecker) -> dict[str, str]:
        """Place ``body`` as a one-replica service (on a manager): the policy decides first (403),
        then what a service cannot express is refused (400), then Swarm picks the node."""
        checked = checker.check(body)
        check_expressible(opts.privileged, opts.network_mode, normalize_create_body(opts.create_extras or {}))
        name = placement.service_name(opts.name)
        where = opts.placement
        spec = service_spec(
            name,
            checked,
            constraints=list(where.constraints or []) if where else [],
            preferences=list(where.preferences or []) if where else [],
            reserve=msgspec.to_builtins(opts.resources) if opts.resources is not None else None,
        )
        placed = await placement.place(self._engine, spec, self._settings.placement_timeout_ms / 1000)
        self.remember(placed.container_id, placed.node_id)
        return {"containerId": placed.container_id, "name": name, "status": "running"}

    async def place_body(
        self, body: dict[str, Any], reserve: Mapping[str, Any] | None = None, followed: bool = False
    ) -> placement.Placed:
        """Place a create body the runner made for its own work (a one-use bootstrap, a job), on a
        manager; ``followed``: the runner that follows it removes its service (see ``tidy_forever``)."""
        spec = service_spec(placement.service_name(None), body, reserve=reserve)
        if followed:
            spec["Labels"][FOLLOWED_LABEL] = "true"
        placed = await placement.place(self._engine, spec, self._settings.placement_timeout_ms / 1000)
        self.remember(placed.container_id, placed.node_id)
        return placed

    async def attached(
        self, container_id: str, instance: str, marker: str = ONESHOT_LABEL
    ) -> tuple[Attached, str, str]:
        """Attach to a container Swarm placed on this node for the runner's own work (a one-use run,
        a job): (its attach, its service, its ``marker`` label). Only one of this cluster's own,
        with that label, is accepted: anything else does not exist."""
        document = await self._engine.run(lambda api: api.inspect_container(container_id))
        labels = (document.get("Config") or {}).get("Labels") or {}
        service_id, marked = labels.get(SERVICE_LABEL), labels.get(marker)
        if labels.get(INSTANCE_LABEL) != instance or not marked or not service_id:
            raise not_found_container(container_id)
        attached = await self._engine.run(lambda api: Attached(api, str(document["Id"])))
        return attached, str(service_id), str(marked)

    def remember_job(self, job_id: str, node_id: str) -> None:
        _remember(self._jobs, job_id, node_id)

    async def node_of_job(self, job_id: str) -> str | None:
        """The node whose runner follows (or followed) the job, when another one: its memory is the
        only record of an ended job, so every other runner is asked at once."""
        local = await self.local()
        node = self._jobs.get(job_id)
        if node is None:
            peers = [p for n, p in (await self.peers.known()).items() if n != local.node_id and self.peers.healthy(n)]

            async def ask(peer: Peer) -> str | None:
                try:
                    await self.peers.get_json(peer.url, "/v1/jobs/" + quote(job_id, safe=""))
                except Exception:  # not there (404), or that runner cannot say: another may
                    return None
                return peer.node_id

            node = next((found for found in await asyncio.gather(*(ask(p) for p in peers)) if found), None)
            if node is not None:
                self.remember_job(job_id, node)
        return None if node in (None, local.node_id) else node

    async def place_through_a_manager(self, image: str, timeout_ms: int) -> tuple[str, str, str]:
        """(container, node, service) of a one-use container a manager's runner placed (on a worker).
        ``timeout_ms`` is the run's own (its container's lifetime): the placement waits up to the
        placement timeout, whatever the run's, and so does this request."""
        manager = await self.a_manager()
        answer = await self.peers.post_json(
            manager.url,
            "/v1/cluster/place",
            {"image": image, "timeoutMs": timeout_ms},
            self._settings.placement_timeout_ms / 1000 + self._look,
        )
        self.remember(str(answer["containerId"]), str(answer["nodeId"]))
        return str(answer["containerId"]), str(answer["nodeId"]), str(answer["serviceId"])

    async def remove_placed(self, reference: str) -> bool:
        """Remove the service of a container Swarm placed on this node; False for any other container."""
        try:
            service_id = await self.service_of(reference)
        except ApiError as error:
            if error.kind is Kind.NOT_FOUND:
                return False
            raise
        if not service_id:
            return False
        await self.remove_service(service_id)
        self.forget(reference)
        return True

    async def remove_service(self, service_id: str) -> None:
        """Remove a service (and so its container): here on a manager, else through a manager's runner."""
        local = await self.local()
        if local.manager:
            await placement.remove(self._engine, service_id)
            return
        manager = await self.a_manager()
        await self.peers.post_json(
            manager.url,
            "/v1/cluster/services/remove",
            {"serviceId": service_id},
            placement.REMOVE_WAIT_SECONDS + self._look,
        )

    async def service_of(self, container_id: str) -> str | None:
        """The Swarm service of a container of this node, when Swarm placed it."""
        document = await self._engine.run(lambda api: api.inspect_container(container_id))
        return ((document.get("Config") or {}).get("Labels") or {}).get(SERVICE_LABEL)

    async def nodes(self) -> list[dict[str, Any]]:
        """Every Swarm node with its runner (from a manager's engine, or a manager's runner)."""
        local = await self.local()
        if not local.manager:
            manager = await self.a_manager()
            return list((await self.peers.get_json(manager.url, "/v1/cluster"))["nodes"])
        listed, known = await asyncio.gather(self._engine.run(nodes), self.peers.known(refresh=True))
        return [_node(item, known, self.peers.healthy) for item in listed]

    async def tidy_forever(self) -> None:
        """On a manager: remove the services whose container is gone for good and nobody will remove
        (auto-remove ones, and one-use ones whose run ended or whose node lost them), as the engine
        removes an auto-remove container that exits."""
        while True:
            await asyncio.sleep(TIDY_SECONDS)
            with contextlib.suppress(Exception):
                if (await self.local()).manager:
                    for service_id in await self._engine.run(_ended_services):
                        await placement.remove(self._engine, service_id)

    async def aclose(self) -> None:
        await self.peers.aclose()


def _ended_services(api: Any) -> list[str]:
    ended = []
    for service in services_labelled(api, [f"{MANAGED_LABEL}=true"]):
        labels = (service.get("Spec") or {}).get("Labels") or {}
        if _tidied(labels) and tidy_due(labels, service_tasks(api, str(service["ID"])), time.time()):
            ended.append(str(service["ID"]))
    return ended


def _tidied(labels: Mapping[str, str]) -> bool:
    return any(labels.get(label) == "true" for label in (AUTO_REMOVE_LABEL, ONESHOT_LABEL, FOLLOWED_LABEL))


def tidy_due(labels: Mapping[str, str], tasks: list[TaskView], now: float) -> bool:
    """Is a tidied service's container gone for good, and nobody left to remove the service? A
    followed one (a job) only FOLLOWED_GRACE_SECONDS after its task ended: its runner reads the
    final state first, then removes it itself."""
    if not tasks or not all(task.state in TASK_ENDED for task in tasks):
        return False
    if labels.get(FOLLOWED_LABEL) == "true":
        return now - max(task.changed_at for task in tasks) >= FOLLOWED_GRACE_SECONDS
    return True


def _remember(memory: OrderedDict[str, str], key: str, node_id: str) -> None:
    memory[key] = node_id
    memory.move_to_end(key)
    while len(memory) > REMEMBERED:
        memory.popitem(last=False)


def _names(reference: str, container_id: str, service_name: str) -> bool:
    bare = reference.lstrip("/")
    return bare == service_name or (len(bare) >= 4 and container_id.startswith(bare))


def _node(item: Mapping[str, Any], known: Mapping[str, Peer], healthy: Callable[[str], bool]) -> dict[str, Any]:
    node_id = str(item.get("ID") or "")
    spec, status = item.get("Spec") or {}, item.get("Status") or {}
    peer = known.get(node_id)
    return {
        "nodeId": node_id,
        "hostname": str((item.get("Description") or {}).get("Hostname") or ""),
        "role": str(spec.get("Role") or ""),
        "availability": str(spec.get("Availability") or ""),
        "state": str(status.get("State") or ""),
        "runner": {"url": peer.url if peer else None, "reachable": peer is not None and healthy(node_id)},
    }


def _query(**values: str) -> str:
    return urlencode(values)
