"""Scope: containers and volumes the runner did not create do not exist for its clients."""

from __future__ import annotations

import functools
import io
import json
import tarfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote

import docker
import pytest

from docker_runner_client import ExecOptions, HttpDockerRunnerClient, NotFound
from tests.conftest import sleeper_opts
from tests.support.docker_env import SESSION_ID, SESSION_LABELS, TEST_IMAGE
from tests.support.server import TEST_SECRET, RunningServer, make_settings, running_runner
from tests.support.signed import error_of, signed_request

pytestmark = pytest.mark.docker


@pytest.fixture
def foreign(docker_api: docker.APIClient) -> Iterator[str]:
    """A container started behind the runner's back, as `docker run` would, with a volume."""
    volume = f"dr-test-foreign-{SESSION_ID}"
    labels = {**SESSION_LABELS, "case": "foreign"}
    created = docker_api.create_container(
        TEST_IMAGE,
        ["sleep", "3600"],
        labels=labels,
        host_config=docker_api.create_host_config(binds=[f"{volume}:/data"], init=True),
    )
    docker_api.start(created["Id"])
    try:
        yield str(created["Id"])
    finally:
        docker_api.remove_container(created["Id"], force=True)
        docker_api.remove_volume(volume, force=True)


def _tar() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        archive.addfile(tarfile.TarInfo("empty"), io.BytesIO(b""))
    return buffer.getvalue()


def test_foreign_container_is_invisible_everywhere(
    client: HttpDockerRunnerClient, docker_api: docker.APIClient, foreign: str
) -> None:
    short = foreign[:12]
    name = docker_api.inspect_container(foreign)["Name"].lstrip("/")
    for reference in (foreign, short, name):
        for call in (
            functools.partial(client.inspect_container, reference),
            functools.partial(client.container_labels, reference),
            functools.partial(client.container_networks, reference),
            functools.partial(client.exec_run, reference, "true"),
            functools.partial(client.touch_container, reference),
            functools.partial(client.get_archive, reference, "/"),
            functools.partial(client.put_archive, reference, "/tmp", _tar()),
            functools.partial(client.upload_archive, reference, "/tmp", _tar()),
        ):
            with pytest.raises(NotFound) as caught:
                call()
            assert caught.value.code == "no_such_container", caught.value
        client.stop_container(reference, timeout_sec=0)  # "already gone": 204, and nothing happens
        client.remove_container(reference, force=True)
    assert docker_api.inspect_container(foreign)["State"]["Running"]
    assert client.find_by_labels({"case": "foreign"}, all_containers=True) == []
    volume = f"dr-test-foreign-{SESSION_ID}"
    assert client.list_by_volume(volume) == []
    client.remove_volume(volume)  # "already gone" for this client: 204, and nothing happens
    assert docker_api.inspect_volume(volume)["Name"] == volume
    with pytest.raises(NotFound):  # nor can a new container mount its volume
        client.start_container(sleeper_opts(binds=[f"{volume}:/stolen"]))
    exec_id = docker_api.exec_create(foreign, ["sleep", "1"], tty=True)["Id"]
    with pytest.raises(NotFound):
        client.resize_exec(exec_id, 80, 24)


def _logs_answer(url: str, reference: str) -> tuple[int, str]:
    response = signed_request(url, "GET", f"/v1/containers/logs/sse?containerId={reference}&follow=false")
    return response.status_code, error_of(response)["code"]


def test_foreign_logs_and_interactive_exec_answer_as_if_absent(
    runner: RunningServer, client: HttpDockerRunnerClient, docker_api: docker.APIClient, foreign: str
) -> None:
    """Logs over SSE and the interactive WebSocket answer a foreign container like a missing one;
    no exec is created in it."""
    absent = _logs_answer(runner.url, "does-not-exist-xyz")
    assert absent == (404, "no_such_container")
    name = docker_api.inspect_container(foreign)["Name"].lstrip("/")
    for reference in (foreign, foreign[:12], name):
        assert _logs_answer(runner.url, reference) == absent
        with pytest.raises(NotFound) as caught:
            next(iter(client.logs(reference, follow=True)))
        assert caught.value.code == "no_such_container"
        with pytest.raises(NotFound) as refused:
            client.open_exec(reference, ["sh", "-c", "echo reached"])
        assert (refused.value.code, refused.value.status_code) == ("no_such_container", 404)
    assert not docker_api.inspect_container(foreign)["ExecIDs"]


def test_allowed_container_references_name_only_the_runners_containers(
    tmp_path: Path, docker_api: docker.APIClient, foreign: str
) -> None:
    """With namespaces, links and VolumesFrom allowed by the policy, a new container may join, link
    or borrow volumes of the runner's containers only: a foreign one is 404, and nothing is created."""
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps({"allow": {"containerNamespaces": True, "links": True, "volumesFrom": True}}))
    with (
        running_runner(make_settings(policy_path=policy)) as server,
        HttpDockerRunnerClient(server.url, TEST_SECRET) as client,
    ):
        own = client.start_container(sleeper_opts())
        try:
            name = docker_api.inspect_container(foreign)["Name"].lstrip("/")
            for host_config in (
                {"NetworkMode": f"container:{foreign}"},
                {"PidMode": f"container:{foreign[:12]}"},
                {"IpcMode": f"container:{name}"},
                {"VolumesFrom": [f"{foreign}:ro"]},
                {"Links": [f"{name}:alias"]},
            ):
                with pytest.raises(NotFound) as caught:
                    client.start_container(sleeper_opts(create_extras={"HostConfig": host_config}))
                assert caught.value.code == "no_such_container", host_config
            joined = client.start_container(
                sleeper_opts(create_extras={"HostConfig": {"PidMode": f"container:{own.container_id}"}})
            )
            client.remove_container(joined.container_id, force=True)
        finally:
            client.remove_container(own.container_id, force=True)
    assert (
        docker_api.containers(all=True, filters={"label": f"dev.docker-runner.instance={server.settings.instance}"})
        == []
    )


def test_scope_all_sees_everything(docker_api: docker.APIClient, foreign: str) -> None:
    """DOCKER_RUNNER_SCOPE=all: the runner acts on any container."""
    with (
        running_runner(make_settings(scope_all=True)) as server,
        HttpDockerRunnerClient(server.url, TEST_SECRET) as client,
    ):
        assert client.inspect_container(foreign)["Id"] == foreign
        assert client.exec_run(foreign, "echo visible", ExecOptions()).stdout == "visible\n"
        assert foreign in client.find_by_labels({"case": "foreign"})


SPLICED = [".", "..", "%2E", "../images", "..%2F..%2Finfo", "x/../../info", "%20", "a?b"]


@pytest.mark.parametrize("scope_all", [False, True])
def test_references_that_would_reach_another_engine_endpoint_are_404(scope_all: bool) -> None:
    """A container "id" of `.` or `../images` must not turn /containers/{id}/json into another route."""
    with running_runner(make_settings(scope_all=scope_all)) as server:
        for reference in SPLICED:
            for method, path, body in (
                ("GET", f"/v1/containers/inspect?containerId={reference}", None),
                ("GET", f"/v1/containers/labels?containerId={reference}", None),
                ("GET", f"/v1/containers/networks?containerId={reference}", None),
                ("POST", "/v1/exec/run", {"containerId": unquote(reference), "command": "true"}),
                ("GET", f"/v1/containers/{reference}/archive?path=/", None),
                ("POST", "/v1/exec/resize", {"execId": unquote(reference), "size": {"cols": 80, "rows": 24}}),
            ):
                response = signed_request(server.url, method, path, json_body=body)
                assert response.status_code == 404, (method, path, body, response.text)
                code = error_of(response)["code"]  # not_found: the client normalized the dots out of the path
                assert code.startswith("no_such_") or code == "not_found", response.text
            # removal is idempotent (a volume that is not there is done with): 204, and no engine route reached
            gone = signed_request(
                server.url, "POST", "/v1/volumes/remove", json_body={"volumeName": unquote(reference)}
            )
            assert gone.status_code == 204, (reference, gone.text)
