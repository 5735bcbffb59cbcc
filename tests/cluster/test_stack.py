"""compose/docker-stack.yml deployed for real on the three-engine bed by scripts/stack.sh, driven
through one node's published address with the typed client, then removed with nothing left.

The runner's and Redis' images are built once on the main engine (the build cache makes a rebuild
cheap) and copied into every bed engine with `docker save | docker load`: no registry is used.
Each node's runner mounts its own engine's socket: the bed's sockets differ per node, which the
stack file's DOCKER_SOCKET takes as a Swarm template on the node's hostname (drbedN).
"""

from __future__ import annotations

import os
import secrets
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import docker
import docker.errors
import httpx
import pytest

from docker_runner_client import ContainerOpts, HttpDockerRunnerClient
from docker_runner_client._routes import Call, Route, _json_object
from tests.support.docker_env import SESSION_ID, SESSION_LABELS, TEST_IMAGE
from tests.support.packaging_tools import extra_ca_certs
from tests.support.signed import error_of, signed_request
from tests.support.swarm_bed import REPO_ROOT, SwarmBed, bed_problem
from tests.support.swarm_services import STOPS_ON_TERM
from tests.support.waiting import wait_for

# a clean machine bootstraps Debian and builds both images in the first test's setup (minutes)
pytestmark = [pytest.mark.cluster, pytest.mark.docker, pytest.mark.timeout(900)]

SCRIPT = REPO_ROOT / "scripts" / "stack.sh"
MAIN_ENGINE = "unix:///var/run/docker.sock"
RUNNER_IMAGE = "docker-runner-test/runner:stack"
REDIS_IMAGE = "docker-runner-test/redis:stack"
STACK_LABEL = "com.docker.stack.namespace"
# every bed node's own socket, by the hostname Swarm knows it by (drbedN -> /run/drbed/N/docker.sock)
BED_SOCKET_TEMPLATE = "/run/drbed/{{slice .Node.Hostname 5}}/docker.sock"
PORT = 7071
# what the drive-through node is: a worker, so that placement and exec go through another runner
ENTRY_NODE = 2


def _unavailable(reason: str) -> NoReturn:
    if os.environ.get("RUNNER_REQUIRE_CLUSTER") == "1":
        pytest.fail(f"RUNNER_REQUIRE_CLUSTER=1 but {reason}")
    pytest.skip(reason)


def _stack_sh(*args: str, env: dict[str, str], timeout: float) -> None:
    """scripts/stack.sh, failing the test with the end of its stderr."""
    result = subprocess.run(
        ["bash", str(SCRIPT), *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        start_new_session=True,  # a Ctrl-C to pytest does not cut a teardown's `down` short
    )
    if result.returncode != 0:
        tail = "\n".join(result.stderr.strip().splitlines()[-15:])
        raise AssertionError(f"stack.sh {' '.join(args)} exited {result.returncode}:\n{tail}")


@pytest.fixture(scope="session")
def stack_images() -> tuple[str, str]:
    """Both images built on the main engine, before the bed is taken (session scope: before the package's bed)."""
    problem = bed_problem()
    if problem is not None:
        _unavailable(problem)
    env = {
        "DOCKER_HOST": MAIN_ENGINE,
        "DOCKER_RUNNER_IMAGE": RUNNER_IMAGE,
        "DOCKER_RUNNER_REDIS_IMAGE": REDIS_IMAGE,
        # the build argument of tests/e2e/test_packaging.py's build: either build reuses the other's layers
        "EXTRA_CA_CERTS": extra_ca_certs(),
    }
    try:
        _stack_sh("build", env=env, timeout=840)
    except (AssertionError, subprocess.TimeoutExpired) as exc:
        _unavailable(f"the stack's images cannot be built: {exc}")
    return RUNNER_IMAGE, REDIS_IMAGE


@dataclass(frozen=True)
class Deployed:
    bed: SwarmBed
    name: str
    secret_name: str
    secret: str
    env: dict[str, str]  # what stack.sh needs to remove it again

    def url(self, number: int) -> str:
        return f"http://{self.bed.node(number).addr}:{PORT}"

    def client(self, number: int) -> HttpDockerRunnerClient:
        return HttpDockerRunnerClient(self.url(number), self.secret, max_retries=0)

    def down(self) -> None:
        _stack_sh("down", env=self.env, timeout=180)


def _socket_group(bed: SwarmBed) -> str:
    return str(Path(bed.manager.socket.removeprefix("unix://")).stat().st_gid)


def _leftovers(deployed: Deployed) -> list[str]:
    """Whatever of the stack (or of the containers the runners placed) is still on any node."""
    found: list[str] = []
    for node in deployed.bed.nodes:
        with node.api() as api:
            for container in api.containers(all=True, filters={"label": f"{STACK_LABEL}={deployed.name}"}):
                found.append(f"node {node.number}: task container {container['Names']}")
            for container in api.containers(all=True, filters={"label": f"stack-test={deployed.name}"}):
                found.append(f"node {node.number}: placed container {container['Names']}")
            for network in api.networks(filters={"label": f"{STACK_LABEL}={deployed.name}"}):
                found.append(f"node {node.number}: network {network['Name']}")
    with deployed.bed.manager.api() as manager:
        for label in (f"{STACK_LABEL}={deployed.name}", f"stack-test={deployed.name}"):
            found += [f"service {item['Spec']['Name']}" for item in manager.services(filters={"label": label})]
        found += [f"secret {item['Spec']['Name']}" for item in manager.secrets(filters={"name": deployed.secret_name})]
    return found


def _remove_images(bed: SwarmBed) -> None:
    """The bed as it was: the stack's images loaded into its engines go again."""
    for node in bed.nodes:
        with node.api() as api:
            for image in (RUNNER_IMAGE, REDIS_IMAGE):
                with suppress(docker.errors.NotFound):
                    api.remove_image(image, force=True)


@pytest.fixture(scope="module")
def deployed(stack_images: tuple[str, str], swarm_bed: SwarmBed) -> Iterator[Deployed]:
    """The stack up on the bed (named for this session, its secret fresh), always removed afterwards."""
    name = f"drtest-{SESSION_ID[:8]}"
    env = {
        "DOCKER_HOST": swarm_bed.manager.socket,
        "BUILD_HOST": MAIN_ENGINE,
        "BUILD": "0",
        "STACK_NAME": name,
        "DOCKER_RUNNER_IMAGE": stack_images[0],
        "DOCKER_RUNNER_REDIS_IMAGE": stack_images[1],
        "DOCKER_RUNNER_SECRET_NAME": f"{name}-secret",
        "DOCKER_SOCKET": BED_SOCKET_TEMPLATE,
        "DOCKER_GID": _socket_group(swarm_bed),
        "DOCKER_RUNNER_PORT": str(PORT),
        "DOCKER_RUNNER_INSTANCE": name,
        "ENV_FILE": "/nonexistent/.env",  # the secret comes from the environment, never from a file here
        "STACK_WAIT_S": "90",
    }
    secret = secrets.token_urlsafe(32)
    stack = Deployed(swarm_bed, name, f"{name}-secret", secret, env)
    loads = [arg for node in swarm_bed.nodes for arg in ("--load", node.socket)]
    try:
        _stack_sh("up", *loads, env={**env, "DOCKER_RUNNER_SHARED_SECRET": secret}, timeout=300)
        yield stack
    finally:
        try:
            stack.down()
            wait_for(lambda: not _leftovers(stack), timeout=60, interval=0.5, what="the stack to be gone")
        finally:
            _remove_images(swarm_bed)


def _get(path: str) -> Route[dict[str, object]]:
    return Route(Call("GET", path), _json_object)


def _start_on(client: HttpDockerRunnerClient, number: int, stack: str) -> str:
    """A container placed by the stack's runners on bed node ``number`` (a Swarm constraint)."""
    opts = ContainerOpts(
        image=TEST_IMAGE, cmd=list(STOPS_ON_TERM), labels={**SESSION_LABELS, "stack-test": stack}, ttl_seconds=300
    )
    body = {**opts.to_json(), "placement": {"constraints": [f"node.labels.drbed.node=={number}"]}}
    answer = client._run(Route(Call("POST", "/v1/containers/start", json=body), _json_object))
    return str(answer["containerId"])


def _engine_of(bed: SwarmBed, container_id: str) -> int:
    """Which bed engine runs the container, asked of every engine behind the runners' backs."""
    for node in bed.nodes:
        with node.api() as api, suppress(docker.errors.NotFound):
            api.inspect_container(container_id)
            return node.number
    raise AssertionError(f"no engine of the bed has {container_id}")


def test_each_published_address_reaches_its_own_nodes_runner(deployed: Deployed) -> None:
    """Host-mode publishing: node N's address answers with node N's runner, signed with the Swarm secret."""
    for node in deployed.bed.nodes:
        with deployed.client(node.number) as client:
            answer = client._run(_get("/v1/cluster/self"))
        assert (answer["nodeId"], answer["role"]) == (node.swarm_node_id, node.role)


def test_through_one_address_a_container_is_placed_on_each_node_and_exec_reaches_it(deployed: Deployed) -> None:
    """Through a worker's runner: a container constrained to each node lands there, and exec on it
    (possible only on the owning engine) answers from that container, then it is removed."""
    placed: dict[int, str] = {}
    with deployed.client(ENTRY_NODE) as client:
        try:
            for node in deployed.bed.nodes:
                placed[node.number] = _start_on(client, node.number, deployed.name)
            assert {number: _engine_of(deployed.bed, cid) for number, cid in placed.items()} == {
                node.number: node.number for node in deployed.bed.nodes
            }
            for number, container_id in placed.items():
                marker = uuid.uuid4().hex[:8]
                result = client.exec_run(container_id, ["sh", "-c", f"echo {marker}-$(hostname)"])
                assert (result.exit_code, result.stdout) == (0, f"{marker}-{container_id[:12]}\n"), number
        finally:
            for container_id in placed.values():
                client.remove_container(container_id, force=True)


def test_a_nonce_accepted_by_one_runner_is_refused_by_another(deployed: Deployed) -> None:
    """The runners share the stack's Redis: a signed request replayed to another node is 401 replay."""
    target = "/v1/containers"
    timestamp, nonce = int(time.time() * 1000), str(uuid.uuid4())
    first = signed_request(deployed.url(1), "GET", target, secret=deployed.secret, timestamp_ms=timestamp, nonce=nonce)
    assert first.status_code == 200
    again = signed_request(deployed.url(3), "GET", target, secret=deployed.secret, timestamp_ms=timestamp, nonce=nonce)
    assert (again.status_code, error_of(again)["code"]) == (401, "replayed_nonce")


def test_a_wrong_secret_is_refused(deployed: Deployed) -> None:
    """The runners were given the Swarm secret, nothing else: another secret's signature is 401."""
    answer = signed_request(deployed.url(ENTRY_NODE), "GET", "/v1/containers", secret=secrets.token_urlsafe(32))
    assert answer.status_code == 401


def test_stack_down_leaves_nothing_on_any_node(deployed: Deployed) -> None:
    """stack.sh down: no service, task container, placed container, network or secret of the stack anywhere."""
    deployed.down()
    wait_for(lambda: not _leftovers(deployed), timeout=60, interval=0.5, what="every node to drop the stack")
    with pytest.raises(httpx.TransportError):
        httpx.get(deployed.url(ENTRY_NODE) + "/v1/health", timeout=2)
