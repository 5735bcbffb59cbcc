"""The cluster test bed itself: a real three-node Swarm, placement, exec locality, lost hosts, redis."""

from __future__ import annotations

import docker
import docker.errors
import pytest

from tests.support.docker_env import SESSION_LABELS, TEST_IMAGE
from tests.support.redis_server import RedisServer
from tests.support.swarm_bed import NODE_COUNT, NodeOutage, SwarmBed
from tests.support.swarm_services import one_replica_service, running_task, service_name
from tests.support.waiting import wait_for

pytestmark = pytest.mark.cluster


def test_every_node_is_ready_from_the_manager(swarm_bed: SwarmBed) -> None:
    """The manager's engine lists the three nodes Ready, each labelled drbed.node=N, node 1 the leader."""
    with swarm_bed.manager.api() as manager:
        nodes = manager.nodes()
    assert len(nodes) == NODE_COUNT
    by_label = {node["Spec"]["Labels"]["drbed.node"]: node for node in nodes}
    for bed_node in swarm_bed.nodes:
        node = by_label[str(bed_node.number)]
        assert node["ID"] == bed_node.swarm_node_id
        assert node["Status"]["State"] == "ready"
        assert node["Status"]["Addr"] == bed_node.addr
        assert node["Description"]["Hostname"] == f"drbed{bed_node.number}"
    assert by_label["1"]["ManagerStatus"]["Leader"] is True
    assert [node.role for node in swarm_bed.nodes] == ["manager", "worker", "worker"]


def test_a_worker_refuses_swarm_calls(swarm_bed: SwarmBed) -> None:
    """A worker's engine answers 503 to node ls: only a manager can place."""
    with swarm_bed.node(2).api() as worker, pytest.raises(docker.errors.APIError) as refused:
        worker.nodes()
    assert refused.value.status_code == 503


def test_a_one_replica_service_runs_on_some_node(swarm_bed: SwarmBed) -> None:
    """A one-replica service (restart none) runs; its task names the node and the container, which that node has."""
    with swarm_bed.manager.api() as manager, one_replica_service(manager, "anywhere") as service_id:
        task = running_task(manager, service_id)
        owner = swarm_bed.by_swarm_id(task.node_id)
        with owner.api() as engine:
            container = engine.inspect_container(task.container_id)
    assert container["State"]["Running"] is True
    assert container["Config"]["Labels"]["com.docker.swarm.service.id"] == service_id
    assert container["Config"]["Labels"].items() >= SESSION_LABELS.items()


def test_a_placement_constraint_picks_the_node(swarm_bed: SwarmBed) -> None:
    """The constraint node.labels.drbed.node==2 lands the task on node 2."""
    constraints = ["node.labels.drbed.node==2"]
    with swarm_bed.manager.api() as manager, one_replica_service(manager, "on2", constraints=constraints) as sid:
        task = running_task(manager, sid)
    assert task.node_id == swarm_bed.node(2).swarm_node_id


def test_exec_works_only_on_the_owning_nodes_engine(swarm_bed: SwarmBed) -> None:
    """exec runs on the engine that owns the container; every other engine, the manager included, says 404."""
    constraints = ["node.labels.drbed.node==3"]
    with swarm_bed.manager.api() as manager, one_replica_service(manager, "exec", constraints=constraints) as sid:
        task = running_task(manager, sid)
        with swarm_bed.node(3).api() as owner:
            exec_id = owner.exec_create(task.container_id, ["echo", "on-owner"])["Id"]
            assert owner.exec_start(exec_id) == b"on-owner\n"
        for other in (swarm_bed.node(1), swarm_bed.node(2)):
            with other.api() as engine, pytest.raises(docker.errors.NotFound):
                engine.exec_create(task.container_id, ["true"])


def test_removing_the_service_leaves_no_container(swarm_bed: SwarmBed) -> None:
    """After the service is removed, no node keeps a container of it (within a deadline)."""
    with swarm_bed.manager.api() as manager:
        with one_replica_service(manager, "removed") as service_id:
            running_task(manager, service_id)
        label = f"com.docker.swarm.service.id={service_id}"

        def left_over() -> list[str]:
            found = []
            for node in swarm_bed.nodes:
                with node.api() as engine:
                    found += [item["Id"] for item in engine.containers(all=True, filters={"label": label})]
            return found

        wait_for(lambda: not left_over(), timeout=30, interval=0.2, what="the service's containers to go")


def test_the_overlay_carries_traffic_across_nodes(swarm_bed: SwarmBed) -> None:
    """A container on node 3 reaches a dnsrr service on node 2 by name over the attachable overlay."""
    assert swarm_bed.overlay_network is not None
    listener = ["nc", "-ll", "-p", "7000", "-e", "hostname"]
    with (
        swarm_bed.manager.api() as manager,
        one_replica_service(
            manager,
            "echo",
            command=listener,
            constraints=["node.labels.drbed.node==2"],
            networks=[swarm_bed.overlay_network],
            endpoint_mode="dnsrr",
        ) as service_id,
    ):
        task = running_task(manager, service_id)
        probe = f"for i in $(seq 50); do nc -w 2 {service_name('echo')} 7000 && exit 0; sleep 0.2; done; exit 1"
        with swarm_bed.node(3).api() as engine:
            client = engine.create_container(
                TEST_IMAGE,
                ["sh", "-c", probe],
                labels=dict(SESSION_LABELS),
                host_config=engine.create_host_config(network_mode=swarm_bed.overlay_network),
            )["Id"]
            try:
                engine.start(client)
                assert engine.wait(client, timeout=30)["StatusCode"] == 0
                answer = engine.logs(client).decode().strip()
            finally:
                engine.remove_container(client, force=True)
    assert answer == task.container_id[:12]  # the service container's hostname


def test_a_killed_node_is_unreachable_and_comes_back(swarm_bed: SwarmBed, node_outage: NodeOutage) -> None:
    """kill 3 takes node 3's engine away while the others answer; revive 3 brings it back Ready, same node ID."""
    node_outage.kill(3)
    with pytest.raises(docker.errors.DockerException):
        swarm_bed.node(3).api(timeout=5).close()
    with swarm_bed.node(2).api() as worker:
        assert worker.ping()
    revived = node_outage.revive(3)
    assert revived == swarm_bed.node(3)
    with swarm_bed.manager.api() as manager:
        assert manager.inspect_node(revived.swarm_node_id)["Status"]["State"] == "ready"


def test_redis_answers_and_set_nx_is_first_come(redis_server: RedisServer) -> None:
    """The redis fixture answers PING; SET k 1 NX PX 1000 gives OK, then nil while the key lives."""
    assert redis_server.url == f"redis://127.0.0.1:{redis_server.port}/0"
    with redis_server.connect() as connection:
        assert connection.command("PING") == "PONG"
        assert connection.command("SET", "k", "1", "NX", "PX", "1000") == "OK"
        assert connection.command("SET", "k", "1", "NX", "PX", "1000") is None
