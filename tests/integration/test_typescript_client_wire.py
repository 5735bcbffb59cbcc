"""What the TypeScript docker-runner client sends, byte for byte as it sends it, and what it relies on
(docs/protocol.md, "Compatibility with the TypeScript docker-runner")."""

from __future__ import annotations

import base64
import json
import time
import uuid
from urllib.parse import urlencode

import docker
import pytest
from websockets.sync.client import connect

from docker_runner_client import HttpDockerRunnerClient, StartedContainer
from docker_runner_client._signing import sign_headers
from tests.conftest import sleeper_opts
from tests.support.docker_env import SESSION_LABELS
from tests.support.ps import processes
from tests.support.server import TEST_SECRET, RunningServer
from tests.support.signed import error_of, signed_request
from tests.support.waiting import wait_for

pytestmark = pytest.mark.docker


def _exec(runner: RunningServer, container_id: str, command: str | list[str], options: dict[str, object]) -> dict:
    body = {"containerId": container_id, "command": command, "options": options}
    response = signed_request(runner.url, "POST", "/v1/exec/run", json_body=body)
    return {"status": response.status_code, **response.json()}


def test_exec_env_as_an_array(runner: RunningServer, path_container: StartedContainer, exec_path: str) -> None:
    """options.env as ["K=V", ...] reaches the process (a value may hold "="), on both paths."""
    answer = _exec(runner, path_container.container_id, 'echo "$A|$B"', {"env": ["A=1", "B=x=y"]})
    assert (answer["status"], answer["stdout"], answer["exitCode"], answer["path"]) == (200, "1|x=y\n", 0, exec_path)


def test_exec_env_array_item_without_a_name_is_400(runner: RunningServer, container: StartedContainer) -> None:
    """An array item that is not NAME=value is a 400 naming options.env."""
    body = {"containerId": container.container_id, "command": "true", "options": {"env": ["NOEQUALS"]}}
    response = signed_request(runner.url, "POST", "/v1/exec/run", json_body=body)
    error = error_of(response)
    assert (response.status_code, error["code"], error["details"]["field"]) == (400, "validation_error", "options.env")


def test_abort_signal_is_accepted_and_other_unknown_keys_are_not(
    runner: RunningServer, container: StartedContainer
) -> None:
    """options.signal arrives as {} and is ignored; any other unknown option stays a 400 naming it."""
    answer = _exec(runner, container.container_id, "echo ok", {"signal": {}, "timeoutMs": 0, "idleTimeoutMs": 0})
    assert (answer["status"], answer["stdout"]) == (200, "ok\n")
    body = {"containerId": container.container_id, "command": "true", "options": {"signal": {}, "bogus": 1}}
    response = signed_request(runner.url, "POST", "/v1/exec/run", json_body=body)
    assert (response.status_code, error_of(response)["details"]["field"]) == (400, "options.bogus")


def _container_output(client: HttpDockerRunnerClient, container_id: str) -> dict[str, bytes]:
    seen: dict[str, bytes] = {"stdout": b"", "stderr": b""}
    for chunk in client.logs(container_id, follow=False):
        seen[chunk.stream] += chunk.data
    return seen


def test_log_to_pid1_copies_each_stream_to_the_containers_own(
    runner: RunningServer, client: HttpDockerRunnerClient, path_container: StartedContainer, exec_path: str
) -> None:
    """logToPid1: stdout to the container's stdout, stderr to its stderr (docker logs); the answer is
    unchanged, on both paths."""
    container = path_container
    marker = uuid.uuid4().hex[:8]
    command = f"echo out-{marker}; echo err-{marker} >&2; exit 4"
    answer = _exec(runner, container.container_id, command, {"logToPid1": True})
    assert (answer["status"], answer["stdout"], answer["stderr"], answer["exitCode"], answer["path"]) == (
        200,
        f"out-{marker}\n",
        f"err-{marker}\n",
        4,
        exec_path,
    )
    logged = _container_output(client, container.container_id)
    assert (logged["stdout"], logged["stderr"]) == (f"out-{marker}\n".encode(), f"err-{marker}\n".encode())
    array = _exec(runner, container.container_id, ["echo", "array", marker], {"logToPid1": True})
    assert array["stdout"] == f"array {marker}\n"
    assert _container_output(client, container.container_id)["stdout"].endswith(f"array {marker}\n".encode())


def test_log_to_pid1_timeout_kills_everything_and_leaves_no_file(
    runner: RunningServer, path_container: StartedContainer, docker_api: docker.APIClient
) -> None:
    """A timed-out logToPid1 run kills the command, its background jobs and the copies; nothing stays
    in /tmp, on both paths."""
    container = path_container
    command = "sleep 7791 & echo started; sleep 7792"
    answer = _exec(runner, container.container_id, command, {"logToPid1": True, "timeoutMs": 1000})
    assert (answer["status"], answer["error"]["code"]) == (504, "exec_timeout")
    assert answer["error"]["details"]["stdout"] == "started\n"
    remaining = processes(docker_api, container.container_id)
    assert "sleep 779" not in remaining and "tee" not in remaining, remaining
    leftovers = docker_api.exec_start(docker_api.exec_create(container.container_id, ["ls", "-A", "/tmp"])["Id"])
    assert leftovers == b""


def test_exec_websocket_demuxes_stderr_by_default(runner: RunningServer, container: StartedContainer) -> None:
    """Without demux in the query (that client never sends demux=true), stderr arrives as stderr frames."""
    query = urlencode({"containerId": container.container_id, "command": "echo out; echo err >&2"})
    target = f"/v1/exec/interactive/ws?{query}"
    headers = sign_headers(TEST_SECRET, "GET", target, b"", str(int(time.time() * 1000)), str(uuid.uuid4()))
    frames = []
    with connect(runner.url.replace("http", "ws") + target, additional_headers=headers) as socket:
        while not frames or frames[-1]["type"] not in ("exit", "error"):
            frames.append(json.loads(socket.recv(timeout=10)))
    output = {(f["type"], base64.b64decode(f["data"])) for f in frames if f["type"] in ("stdout", "stderr")}
    assert output == {("stdout", b"out\n"), ("stderr", b"err\n")}
    assert frames[-1]["type"] == "exit"


def test_removing_a_gone_volume_is_204(runner: RunningServer, client: HttpDockerRunnerClient) -> None:
    """volumes/remove is idempotent: a volume already gone (or never there) answers 204, as container remove does."""
    volume = "dr-test-gone-" + SESSION_LABELS["dev.docker-runner.test-session"]
    box = client.start_container(sleeper_opts(binds=[f"{volume}:/data"]))
    client.remove_container(box.container_id, force=True)
    wait_for(lambda: not client.list_by_volume(volume), what="the container to let go of the volume")
    for _ in range(2):
        response = signed_request(runner.url, "POST", "/v1/volumes/remove", json_body={"volumeName": volume})
        assert response.status_code == 204, response.text
    never = signed_request(runner.url, "POST", "/v1/volumes/remove", json_body={"volumeName": "dr-never-" + volume})
    assert never.status_code == 204
