"""Lost nodes on the three-engine bed: a node whose engine or runner does not answer is a fast,
retryable 503 for its containers only; Swarm marks it down and places elsewhere; when it comes back
its containers are gone and nothing is left; a lost leader among three managers is survived."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import suppress

import docker
import docker.errors
import pytest

from docker_runner_client import ContainerOpts, DockerRunnerError, NotFound, UpstreamError
from tests.support.cluster_runners import ClusterRunner, cluster_runners
from tests.support.docker_env import SESSION_LABELS, TEST_IMAGE
from tests.support.redis_server import RedisServer
from tests.support.swarm_bed import NodeOutage, SwarmBed
from tests.support.swarm_services import STOPS_ON_TERM, sweep_session_services
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.docker]

LOST = 3  # the node these tests lose (a worker)


@pytest.fixture
def runners(swarm_bed: SwarmBed, redis_server: RedisServer) -> Iterator[list[ClusterRunner]]:
    with cluster_runners(swarm_bed, redis_server, placement_timeout_ms=20_000) as started:
        yield started
    sweep_session_services(swarm_bed)


def _start_on(runner: ClusterRunner, node: int, case: str) -> str:
    opts = ContainerOpts(image=TEST_IMAGE, cmd=list(STOPS_ON_TERM), labels={**SESSION_LABELS, "case": case})
    body = {**opts.to_json(), "placement": {"constraints": [f"node.labels.drbed.node=={node}"]}}
    with runner.client() as client:
        return str(client._run(_post("/v1/containers/start", body))["containerId"])  # type: ignore[attr-defined]


def _timed_error(runner: ClusterRunner, container_id: str) -> tuple[float, DockerRunnerError]:
    started = time.monotonic()
    with runner.client(max_retries=0) as client:
        try:
            client.exec_run(container_id, "true")
        except DockerRunnerError as error:
            return time.monotonic() - started, error
    raise AssertionError("the exec succeeded on a lost node")


def test_a_dead_engine_is_a_fast_retryable_503_for_its_containers_only(
    runners: list[ClusterRunner], node_outage: NodeOutage, swarm_bed: SwarmBed
) -> None:
    """Node 3's engine SIGKILLed: its container answers 503 node_unavailable (details.node) within 2 s
    through another runner, while a container on node 2 keeps answering."""
    case = f"lost-engine-{uuid.uuid4().hex[:8]}"
    lost, kept = _start_on(runners[0], LOST, case), _start_on(runners[0], 2, case)
    with runners[0].client() as client:  # through a runner that knows neither yet
        assert client.exec_run(lost, "echo hi").stdout == "hi\n"
    node_outage.kill(LOST)
    seconds, error = _timed_error(runners[1], lost)
    assert isinstance(error, UpstreamError) and error.code == "node_unavailable" and error.retryable
    assert error.details["node"] == swarm_bed.node(LOST).swarm_node_id
    assert seconds < 2.0
    with runners[1].client() as client:
        assert client.exec_run(kept, "echo still").stdout == "still\n"


def test_a_hung_runner_is_a_fast_retryable_503(runners: list[ClusterRunner], swarm_bed: SwarmBed) -> None:
    """Node 3's runner accepts connections and answers nothing: node_unavailable within 2 s, not a hang."""
    case = f"hung-{uuid.uuid4().hex[:8]}"
    container_id = _start_on(runners[0], LOST, case)
    with runners[0].client() as client:
        assert client.exec_run(container_id, "echo hi").stdout == "hi\n"
    runners[LOST - 1].server.hang(8)
    wait_for(
        lambda: not runners[0].server.runtime.cluster.peers.healthy(swarm_bed.node(LOST).swarm_node_id),  # type: ignore[union-attr]
        timeout=5,
        what="the hung runner to be seen as lost",
    )
    seconds, error = _timed_error(runners[0], container_id)
    assert isinstance(error, UpstreamError) and error.code == "node_unavailable"
    assert seconds < 2.0


def test_swarm_marks_a_lost_node_down_places_elsewhere_and_its_containers_go_when_it_returns(
    runners: list[ClusterRunner], node_outage: NodeOutage, swarm_bed: SwarmBed
) -> None:
    """Node 3 lost: GET /v1/cluster shows it down within Swarm's heartbeat, new containers avoid it;
    back, its engine kills what it ran: the runner answers 404 for it, and no service is left."""
    case = f"down-{uuid.uuid4().hex[:8]}"
    lost = _start_on(runners[0], LOST, case)
    lost_id = swarm_bed.node(LOST).swarm_node_id
    node_outage.kill(LOST)

    def state() -> str:
        with runners[0].client() as client:
            nodes = client._run(_get("/v1/cluster"))["nodes"]  # type: ignore[attr-defined]
        return str(next(node["state"] for node in nodes if node["nodeId"] == lost_id))

    wait_for(lambda: state() == "down", timeout=30, interval=0.5, what="Swarm to mark the node down")
    opts = ContainerOpts(image=TEST_IMAGE, cmd=list(STOPS_ON_TERM), labels={**SESSION_LABELS, "case": case})
    placed = []
    for index in range(4):
        with runners[index % 2].client() as client:
            placed.append(client.start_container(opts).container_id)
    api = node_outage_free_apis(swarm_bed)
    try:
        homes = {cid: next(n for n, a in api.items() if _has(a, cid)) for cid in placed}
    finally:
        for a in api.values():
            a.close()
    assert LOST not in homes.values(), homes
    node_outage.revive(LOST)
    with runners[0].client(max_retries=0) as client:
        wait_for(lambda: _gone(client, lost), timeout=60, interval=0.5, what="the lost node's container to be gone")
    manager = swarm_bed.manager.api()
    try:
        wait_for(
            lambda: not [s for s in manager.services(filters={"label": f"case={case}"}) if _task_ended(manager, s)],
            timeout=30,
            what="the services whose container died to be removed",
        )
    finally:
        manager.close()


def node_outage_free_apis(bed: SwarmBed) -> dict[int, docker.APIClient]:
    return {node.number: node.api() for node in bed.nodes if node.number != LOST}


def _has(api: docker.APIClient, container_id: str) -> bool:
    try:
        api.inspect_container(container_id)
    except docker.errors.NotFound:
        return False
    return True


def _gone(client: object, container_id: str) -> bool:
    try:
        client.inspect_container(container_id)  # type: ignore[attr-defined]
    except NotFound:
        return True
    except DockerRunnerError:
        return False  # the node is still on its way back
    return False


def _task_ended(manager: docker.APIClient, service: dict[str, object]) -> bool:
    tasks = manager.tasks(filters={"service": service["ID"]})
    return bool(tasks) and all(t["Status"]["State"] in ("failed", "shutdown", "complete", "rejected") for t in tasks)


def _get(path: str):  # type: ignore[no-untyped-def]
    from docker_runner_client._routes import Call, Route, _json_object

    return Route(Call("GET", path), _json_object)


def _post(path: str, body: dict[str, object]):  # type: ignore[no-untyped-def]
    from docker_runner_client._routes import Call, Route, _json_object

    return Route(Call("POST", path, json=body), _json_object)


def _a_manager_besides(bed: SwarmBed, number: int) -> docker.APIClient:
    """The engine of a manager other than node ``number`` that answers (StopIteration: none now)."""
    return next(node for node in bed.nodes if node.number != number and _answers(node)).api()


def _set_role(bed: SwarmBed, number: int, role: str) -> None:
    manager = _a_manager_besides(bed, number)
    try:
        node = manager.inspect_node(bed.node(number).swarm_node_id)
        spec = {**node["Spec"], "Role": role}
        manager.update_node(node["ID"], node["Version"]["Index"], spec)
    finally:
        manager.close()


def _demoted(bed: SwarmBed, number: int) -> bool:
    """Node ``number`` is a worker, as Swarm says and as its own engine says; if not, it is asked
    to become one (once per call). A node or Swarm that cannot say now is asked again: a manager
    reconnecting after the leader's return may say ControlAvailable false for a moment."""
    if _manager_or_not(bed.node(number)) is False and _swarm_role(bed, number) == "worker":
        return True
    with suppress(Exception):
        _set_role(bed, number, "worker")
    return False


def _swarm_role(bed: SwarmBed, number: int) -> str | None:
    """The node's role as a manager's engine says it (a manager status too: still a manager)."""
    try:
        manager = _a_manager_besides(bed, number)
    except StopIteration:
        return None
    try:
        node = manager.inspect_node(bed.node(number).swarm_node_id)
        return "manager" if node["Spec"]["Role"] == "manager" or node.get("ManagerStatus") else "worker"
    except Exception:
        return None
    finally:
        manager.close()


def _answers(node: object) -> bool:
    """The node's engine answers, as a manager."""
    return _manager_or_not(node) is True


def _manager_or_not(node: object) -> bool | None:
    """Whether the node's engine says it is a manager; None when it does not answer (now)."""
    try:
        api = node.api(timeout=3)  # type: ignore[attr-defined]
    except Exception:
        return None
    try:
        return bool(api.info()["Swarm"]["ControlAvailable"])
    except Exception:
        return None
    finally:
        api.close()


def test_losing_the_leader_of_three_managers(
    runners: list[ClusterRunner], node_outage: NodeOutage, swarm_bed: SwarmBed
) -> None:
    """Three managers, the leader's engine killed: placements are refused with a retryable 503 until
    a new leader is elected, then work again; exec on a running container works throughout."""
    case = f"leader-{uuid.uuid4().hex[:8]}"
    for number in (2, 3):
        _set_role(swarm_bed, number, "manager")
    try:
        wait_for(lambda: _answers(swarm_bed.node(3)), timeout=30, what="node 3 to be a manager")
        running = _start_on(runners[0], 2, case)
        node_outage.kill(1)
        deadline, refused, placed = time.monotonic() + 60, [], None
        opts = ContainerOpts(image=TEST_IMAGE, cmd=list(STOPS_ON_TERM), labels={**SESSION_LABELS, "case": case})
        while time.monotonic() < deadline and placed is None:
            with runners[2].client(max_retries=0, timeout_ms=30_000) as client:
                assert client.exec_run(running, "echo alive").stdout == "alive\n"  # throughout
                try:
                    placed = client.start_container(opts).container_id
                except UpstreamError as error:
                    refused.append(error)
                    time.sleep(0.5)
        assert placed is not None, [f"{e.status_code} {e.code}: {e.message}" for e in refused[-3:]]
        assert all(e.status_code in (502, 503) and e.retryable for e in refused), [e.code for e in refused]
    finally:
        node_outage.revive(1)
        # a demotion can be refused while the revived node's return moves the leadership: asked again
        wait_for(
            lambda: _demoted(swarm_bed, 2) and _demoted(swarm_bed, 3),
            timeout=120,
            interval=1,
            what="nodes 2 and 3 to be workers again",
        )
