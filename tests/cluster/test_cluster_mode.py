"""Cluster mode on the three-engine bed: Swarm places, any runner answers, end to end with the
typed client against different runners (one runner per node, peers as loopback URLs, Redis nonces)."""

from __future__ import annotations

import base64
import functools
import io
import json
import tarfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import suppress

import docker
import docker.errors
import httpx
import pytest

from docker_runner_client import (
    ContainerOpts,
    DockerRunnerRequestError,
    ExecOptions,
    HttpDockerRunnerClient,
    Job,
    JobLog,
    JobMessage,
    JobResources,
    JobUpdate,
    NotFound,
    RunResult,
    UpstreamError,
    ValidationFailed,
)
from docker_runner_client._signing import sign_headers
from tests.support.background import all_at_once
from tests.support.cluster_runners import ClusterRunner, cluster_runners
from tests.support.docker_env import SESSION_LABELS, TEST_IMAGE
from tests.support.redis_server import RedisServer
from tests.support.server import TEST_SECRET
from tests.support.signed import error_of, signed_stream
from tests.support.swarm_bed import SwarmBed
from tests.support.swarm_services import STOPS_ON_TERM, sweep_session_services
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.docker]


@pytest.fixture(scope="module")
def runners(swarm_bed: SwarmBed, redis_server: RedisServer) -> Iterator[list[ClusterRunner]]:
    with cluster_runners(swarm_bed, redis_server, placement_timeout_ms=20_000) as started:
        yield started
    sweep_session_services(swarm_bed)


@pytest.fixture(autouse=True)
def _no_service_left(swarm_bed: SwarmBed) -> Iterator[None]:
    yield
    sweep_session_services(swarm_bed)


def _opts(case: str, **changes: object) -> ContainerOpts:
    values: dict[str, object] = {
        "image": TEST_IMAGE,
        "cmd": list(STOPS_ON_TERM),
        "labels": {**SESSION_LABELS, "case": case},
        "ttl_seconds": 600,
    }
    values.update(changes)
    return ContainerOpts(**values)  # type: ignore[arg-type]


def _node_of(bed: SwarmBed, container_id: str) -> int:
    """Which bed node's engine has the container (asked of every engine, behind the runners' backs)."""
    for node in bed.nodes:
        api = node.api()
        try:
            api.inspect_container(container_id)
            return node.number
        except docker.errors.NotFound:
            continue
        finally:
            api.close()
    raise AssertionError(f"no engine of the bed has {container_id}")


def _leftovers(bed: SwarmBed, case: str) -> list[str]:
    found = []
    for node in bed.nodes:
        api = node.api()
        try:
            found += [c["Id"] for c in api.containers(all=True, filters={"label": f"case={case}"})]
        finally:
            api.close()
    manager = bed.manager.api()
    try:
        found += [s["ID"] for s in manager.services(filters={"label": f"case={case}"})]
    finally:
        manager.close()
    return found


def test_every_runner_tells_its_node(runners: list[ClusterRunner]) -> None:
    """GET /v1/cluster/self: each runner names its own Swarm node and role."""
    for runner in runners:
        with runner.client() as client:
            answer = client._run(_get("/v1/cluster/self"))  # type: ignore[attr-defined]
        assert answer["nodeId"] == runner.node.swarm_node_id
        assert answer["role"] == runner.node.role


def test_the_cluster_lists_every_node_with_its_runner(runners: list[ClusterRunner]) -> None:
    """GET /v1/cluster through a worker's runner: every node, as Swarm says, each with its runner reachable."""
    worker = next(runner for runner in runners if runner.node.role == "worker")
    with worker.client() as client:
        nodes = client._run(_get("/v1/cluster"))["nodes"]  # type: ignore[attr-defined]
    by_id = {node["nodeId"]: node for node in nodes}
    assert set(by_id) == {runner.node.swarm_node_id for runner in runners}
    for runner in runners:
        node = by_id[runner.node.swarm_node_id]
        assert (node["state"], node["availability"], node["role"]) == ("ready", "active", runner.node.role)
        assert node["runner"] == {"url": runner.url, "reachable": True}


def test_containers_are_placed_across_nodes_and_reached_through_any_runner(
    runners: list[ClusterRunner], swarm_bed: SwarmBed
) -> None:
    """Six starts through the runners in turn land on several nodes; each is reached through a runner
    on another node (exec, inspect, labels, archives both ways, logs, the WebSocket, a ticket URL),
    then removed through yet another: no service, task or container is left."""
    case = f"spread-{uuid.uuid4().hex[:8]}"
    started = []
    for index in range(6):
        with runners[index % 3].client() as client:
            started.append(client.start_container(_opts(case)).container_id)
    homes = {container_id: _node_of(swarm_bed, container_id) for container_id in started}
    assert len(set(homes.values())) >= 2, homes
    for container_id, home in homes.items():
        away = next(runner for runner in runners if runner.node.number != home)
        with away.client() as client:
            _check_reached(client, container_id)
    for index, container_id in enumerate(started):
        with runners[(index + 1) % 3].client() as client:
            client.remove_container(container_id, force=True)
    wait_for(lambda: not _leftovers(swarm_bed, case), timeout=30, what="every service and container to go")


def _check_reached(client: HttpDockerRunnerClient, container_id: str) -> None:
    marker = uuid.uuid4().hex[:8]
    result = client.exec_run(container_id, f"echo {marker}; echo err >&2; exit 3", ExecOptions(timeout_ms=10_000))
    assert (result.stdout, result.stderr, result.exit_code) == (f"{marker}\n", "err\n", 3)
    assert client.inspect_container(container_id)["Id"] == container_id
    assert client.container_labels(container_id)["dev.docker-runner.managed"] == "true"
    payload = io.BytesIO()
    with tarfile.open(fileobj=payload, mode="w") as tar:
        data = marker.encode()
        info = tarfile.TarInfo("hello.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    client.upload_archive(container_id, "/tmp", payload.getvalue())
    with tarfile.open(fileobj=io.BytesIO(client.get_archive(container_id, "/tmp/hello.txt"))) as tar:
        member = tar.extractfile("hello.txt")
        assert member is not None and member.read() == marker.encode()
    client.exec_run(container_id, f"echo log-{marker}")
    with client.open_exec(container_id, ["sh", "-c", f"echo ws-{marker}; echo err-{marker} >&2"]) as session:
        outputs = {(output.stream, output.data) for output in session}
    assert outputs == {("stdout", f"ws-{marker}\n".encode()), ("stderr", f"err-{marker}\n".encode())}
    assert session.exit_code == 0
    target = f"/v1/containers/logs/sse?containerId={container_id}&follow=false"
    ticket = client.ticket(target)
    answer = httpx.get(ticket.url(client.base_url), timeout=30)
    assert answer.status_code == 200


def test_a_constraint_places_on_the_named_node(runners: list[ClusterRunner], swarm_bed: SwarmBed) -> None:
    """placement.constraints is Swarm's: node.labels.drbed.node==2 lands on node 2."""
    case = f"constraint-{uuid.uuid4().hex[:8]}"
    with runners[2].client() as client:
        opts = _opts(case)
        body = {**opts.to_json(), "placement": {"constraints": ["node.labels.drbed.node==2"]}}
        container_id = client._run(_post("/v1/containers/start", body))["containerId"]  # type: ignore[attr-defined]
        assert _node_of(swarm_bed, container_id) == 2
        client.remove_container(container_id, force=True)
    wait_for(lambda: not _leftovers(swarm_bed, case), timeout=30, what="the service to go")


def test_a_forwarded_stream_relays_each_frame_as_it_comes(runners: list[ClusterRunner], swarm_bed: SwarmBed) -> None:
    """Logs followed through a runner of another node arrive as they are written, not once the
    stream ends (nor once some buffer fills): the container still runs when its first line is read."""
    case = f"forwarded-stream-{uuid.uuid4().hex[:8]}"
    cmd = ["sh", "-c", "echo first; trap 'exit 0' TERM; while :; do sleep 1; done"]
    with runners[2].client() as client:
        body = {**_opts(case, cmd=cmd).to_json(), "placement": {"constraints": ["node.labels.drbed.node==2"]}}
        container_id = client._run(_post("/v1/containers/start", body))["containerId"]  # type: ignore[attr-defined]
    try:
        assert _node_of(swarm_bed, container_id) == 2
        with runners[0].client(timeout_ms=20_000) as client:
            first = next(iter(client.logs(container_id, follow=True)))
            assert first.data == b"first\n"
            assert client.inspect_container(container_id)["State"]["Running"]
    finally:
        with runners[0].client() as client:
            client.remove_container(container_id, force=True)
    wait_for(lambda: not _leftovers(swarm_bed, case), timeout=30, what="the service to go")


def test_a_placement_that_cannot_fit_is_a_retryable_503_with_swarms_reason(
    runners: list[ClusterRunner], swarm_bed: SwarmBed
) -> None:
    """A constraint no node meets: 503 no_capacity (retryable) naming Swarm's reason, and no service left."""
    case = f"nofit-{uuid.uuid4().hex[:8]}"
    body = {**_opts(case).to_json(), "placement": {"constraints": ["node.labels.drbed.node==9"]}}
    with runners[0].client(max_retries=0) as client, pytest.raises(UpstreamError) as caught:
        client._run(_post("/v1/containers/start", body))  # type: ignore[attr-defined]
    error = caught.value
    assert (error.status_code, error.code, error.retryable) == (503, "no_capacity", True)
    assert "scheduling constraints not satisfied" in error.message
    wait_for(lambda: not _leftovers(swarm_bed, case), timeout=30, what="the service to be removed")


def test_what_a_service_cannot_express_is_a_400_naming_it(runners: list[ClusterRunner]) -> None:
    """createExtras keys with no service equivalent: 400 naming the field, "not available with Swarm placement"."""
    with runners[1].client() as client, pytest.raises(ValidationFailed) as caught:
        client.start_container(_opts("inexpressible", create_extras={"Domainname": "example.test"}))
    assert caught.value.details.get("field") == "createExtras.Domainname"
    assert "not available with Swarm placement" in caught.value.message


def test_a_request_replayed_to_another_runner_is_refused(runners: list[ClusterRunner]) -> None:
    """A signed request accepted by one runner is 401 replayed_nonce on the next (the shared nonce store)."""
    target = "/v1/cluster/self"
    headers = sign_headers(TEST_SECRET, "GET", target, b"", str(int(time.time() * 1000)), str(uuid.uuid4()))
    assert httpx.get(runners[0].url + target, headers=headers).status_code == 200
    replayed = httpx.get(runners[1].url + target, headers=headers)
    assert (replayed.status_code, error_of(replayed)["code"]) == (401, "replayed_nonce")


def _get(path: str):  # type: ignore[no-untyped-def]
    from docker_runner_client._routes import Call, Route, _json_object

    return Route(Call("GET", path), _json_object)


def _post(path: str, body: dict[str, object]):  # type: ignore[no-untyped-def]
    from docker_runner_client._routes import Call, Route, _json_object

    return Route(Call("POST", path, json=body), _json_object)


def test_one_shot_and_test_runs_are_placed_by_swarm_and_say_where(
    runners: list[ClusterRunner], swarm_bed: SwarmBed
) -> None:
    """Without a pool, a run goes where Swarm puts its container, through any runner (a worker's
    included): the answer is the run's, names the node, and no service or container is left."""
    nodes = {runner.node.swarm_node_id for runner in runners}

    def one(index: int) -> RunResult:
        with runners[index % 3].client() as client:
            return client.run(TEST_IMAGE, "sleep 1; echo out; cat; echo err >&2; exit 5", stdin=b"in\n")

    # at once, so that Swarm spreads them (one after another may share a node)
    results = all_at_once([functools.partial(one, index) for index in range(6)], timeout=120)
    for result in results:
        assert (result.exit_code, result.stdout, result.stderr) == (5, "out\nin\n", "err\n")
        assert result.node in nodes and not result.pooled
    assert len({result.node for result in results}) >= 2  # type: ignore[attr-defined]
    with runners[1].client() as client:
        tests = client.run_tests(TEST_IMAGE, {"run_tests.sh": b"echo tests ran; exit 0\n"}, timeout=30)
    assert tests.passed and "tests ran" in tests.test_output and tests.node in nodes
    manager = swarm_bed.manager.api()
    try:
        wait_for(
            lambda: not manager.services(filters={"label": "dev.docker-runner.oneshot"}),
            timeout=30,
            what="every one-use service to be removed",
        )
    finally:
        manager.close()


def _merged_events(
    runner: ClusterRunner, case: str, last_id: str | None, stop: Callable[[list[dict[str, object]]], bool]
) -> tuple[list[dict[str, object]], str | None]:
    """Frames of the merged stream for one case, until ``stop`` says so: (frames, the last id)."""
    filters = base64.b64encode(json.dumps({"type": ["container"], "label": [f"case={case}"]}).encode()).decode()
    frames: list[dict[str, object]] = []
    with signed_stream(
        runner.url, f"/v1/events/sse?filters={filters}", headers={"last-event-id": last_id} if last_id else {}
    ) as response:
        assert response.status_code == 200, response.read()
        event_id = None
        for line in response.iter_lines():
            if line.startswith("id:"):
                event_id = line[3:].strip()
            elif line.startswith("data:"):
                payload = json.loads(line[5:])
                if payload.get("type") == "event":
                    frames.append(payload)
                    last_id = event_id
                    if stop(frames):
                        break
    return frames, last_id


def test_one_event_stream_for_the_whole_cluster_resumes_on_another_runner(
    runners: list[ClusterRunner], swarm_bed: SwarmBed
) -> None:
    """Events of every node in one stream (each frame names its node); dropped midway and resumed
    with its id on another runner: every container's create, start and destroy once, none twice."""
    case = f"merged-{uuid.uuid4().hex[:8]}"
    received: list[dict[str, object]] = []
    containers: list[str] = []

    def load() -> None:
        for index in range(6):
            with runners[index % 3].client() as client:
                containers.append(client.start_container(_opts(case)).container_id)
        for index, container_id in enumerate(list(containers)):
            with runners[index % 3].client() as client:
                client.remove_container(container_id, force=True)

    worker = threading.Thread(target=load)
    worker.start()
    first, last_id = _merged_events(runners[1], case, None, lambda frames: len(frames) >= 5)
    received += first
    rest, _ = _merged_events(
        runners[2],
        case,
        last_id,
        lambda frames: sum(1 for f in received + frames if f["event"]["Action"] == "destroy") >= 6,  # type: ignore[index]
    )
    received += rest
    worker.join(timeout=120)
    keys = [(f["event"]["timeNano"], f["event"]["Action"], f["event"]["Actor"]["ID"]) for f in received]  # type: ignore[index]
    assert len(keys) == len(set(keys)), "an event was delivered twice"
    for container_id in containers:
        mine = [f for f in received if f["event"]["Actor"]["ID"] == container_id]  # type: ignore[index]
        assert {"create", "start", "destroy"} <= {f["event"]["Action"] for f in mine}, container_id  # type: ignore[index]
        assert len({f["node"] for f in mine}) == 1  # a container's events come from its own node
    assert len({f["node"] for f in received}) >= 2


def test_a_placed_container_past_its_ttl_goes_with_its_service(
    runners: list[ClusterRunner], swarm_bed: SwarmBed
) -> None:
    """ttlSeconds in cluster mode: the owning node's reaper removes the container's service, not only the container."""
    case = f"ttl-{uuid.uuid4().hex[:8]}"
    with runners[0].client() as client:
        # a TTL past the placement's own time (seconds on a busy machine): a 1 s one could run out
        # while the start still waited for its task, and the reaper's removal answered it 404
        client.start_container(_opts(case, ttl_seconds=5))
    wait_for(lambda: not _leftovers(swarm_bed, case), timeout=40, what="the reaper to remove the service")


def test_an_image_is_ensured_on_every_node(runners: list[ClusterRunner], swarm_bed: SwarmBed) -> None:
    """images/ensure in cluster mode is done by every runner: an image node 3 lacks (and no registry
    can give it) is refused, though the runner asked has it; one every node has is 204."""
    alias = f"runner-test/ensure:{uuid.uuid4().hex[:8]}"
    apis = {node.number: node.api() for node in swarm_bed.nodes}
    try:
        for number in (1, 2):
            apis[number].tag(TEST_IMAGE, alias)
        with runners[0].client(max_retries=0) as client:
            client.ensure_image(TEST_IMAGE)
            with pytest.raises(DockerRunnerRequestError):
                client.ensure_image(alias)
    finally:
        for number in (1, 2):
            with suppress(docker.errors.NotFound):
                apis[number].remove_image(alias)
        for api in apis.values():
            api.close()


def test_jobs_are_placed_by_swarm_and_followed_through_any_runner(
    runners: list[ClusterRunner], swarm_bed: SwarmBed
) -> None:
    """Jobs submitted through every runner (workers included) land on several nodes and say where;
    each is followed, read and listed through other runners; it ends as on a single host (its input
    a message, its exit code read) and leaves no service or container."""
    case = f"jobs-{uuid.uuid4().hex[:8]}"
    nodes = {runner.node.swarm_node_id for runner in runners}

    def one(index: int) -> Job:
        with runners[index % 3].client() as client:
            return client.submit_job(
                TEST_IMAGE,
                {"n": index, "text": 'a "quoted" \\ line'},
                command=["sh", "-c", "sleep 1; cat; echo done >&2; exit 4"],
                labels={**SESSION_LABELS, "case": case},
                resources=JobResources(memory="64m"),
            )

    submitted = all_at_once([functools.partial(one, index) for index in range(6)], timeout=120)  # so Swarm spreads them
    assert all(job.node in nodes and job.status == "starting" for job in submitted)
    assert len({job.node for job in submitted}) >= 2
    for index, job in enumerate(submitted):
        with runners[index % 3].client() as reader:
            events = list(reader.job_events(job.job_id))
        sent = next(event.message for event in events if isinstance(event, JobMessage))
        assert sent["text"] == 'a "quoted" \\ line'
        assert [event.line for event in events if isinstance(event, JobLog)] == ["done"]
        assert [event.status for event in events if isinstance(event, JobUpdate)] == ["starting", "running", "error"]
        with runners[(index + 1) % 3].client() as other:
            ended = other.job(job.job_id)
        assert (ended.status, ended.exit_code, ended.node) == ("error", 4, job.node)
        assert ended.error is not None and ended.error.code == "job_failed"
    assert _leftovers(swarm_bed, case) == []
    with runners[2].client() as client:
        listed = [job for job in client.jobs() if job.labels.get("case") == case]
    assert {job.job_id for job in listed} == {job.job_id for job in submitted}
    assert [job.created_at for job in listed] == sorted((job.created_at for job in listed), reverse=True)


def test_a_placed_job_is_cancelled_through_another_runner(runners: list[ClusterRunner], swarm_bed: SwarmBed) -> None:
    """A job followed through one runner is cancelled through another: it ends ``cancelled``, its
    service and container gone; an unknown job is 404 through any runner."""
    case = f"job-cancel-{uuid.uuid4().hex[:8]}"
    worker = next(runner for runner in runners if runner.node.role == "worker")
    with worker.client() as client:
        job = client.submit_job(
            TEST_IMAGE, None, command="echo ready; sleep 120", labels={**SESSION_LABELS, "case": case}
        )
    follower, canceller = runners[0], runners[1]
    seen = []
    with follower.client() as reader:
        for event in reader.job_events(job.job_id):
            seen.append(event)
            if isinstance(event, JobLog) and event.line == "ready":
                with canceller.client() as other:
                    cancelled = other.cancel_job(job.job_id)
                assert (cancelled.status, cancelled.node) == ("cancelled", job.node)
    assert [event.status for event in seen if isinstance(event, JobUpdate)] == ["starting", "running", "cancelled"]
    assert _leftovers(swarm_bed, case) == []
    with runners[2].client() as client, pytest.raises(NotFound) as missing:
        client.job("0" * 32)
    assert missing.value.code == "no_such_job"
