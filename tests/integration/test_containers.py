"""Container lifecycle through the client against the real engine (docs/protocol.md 3, 3.1)."""

from __future__ import annotations

import docker
import pytest

from docker_runner_client import (
    ContainerOpts,
    HttpDockerRunnerClient,
    NotFound,
    Resources,
    UpstreamError,
    ValidationFailed,
)
from tests.conftest import sleeper_opts
from tests.support.docker_env import SESSION_LABELS, TEST_IMAGE

pytestmark = pytest.mark.docker


def test_lifecycle(client: HttpDockerRunnerClient, docker_api: docker.APIClient) -> None:
    """start, inspect, labels, networks, findByLabels, stop and remove twice, then 404."""
    started = client.start_container(sleeper_opts(labels={**SESSION_LABELS, "case": "lifecycle"}))
    assert started.status == "running" and started.name
    document = client.inspect_container(started.container_id)
    assert document["Id"] == started.container_id and document["State"]["Running"]
    labels = client.container_labels(started.container_id)
    assert labels["case"] == "lifecycle" and labels["dev.docker-runner.managed"] == "true"
    assert client.container_networks(started.container_id) == ["bridge"]
    assert client.find_by_labels({"case": "lifecycle", **SESSION_LABELS}) == [started.container_id]
    client.stop_container(started.container_id, timeout_sec=0)
    client.stop_container(started.container_id, timeout_sec=0)
    client.remove_container(started.container_id, force=True)
    client.remove_container(started.container_id, force=True)
    with pytest.raises(NotFound) as caught:
        client.inspect_container(started.container_id)
    assert caught.value.code == "no_such_container"
    assert docker_api.containers(all=True, filters={"id": started.container_id}) == []


def test_find_by_labels_order_and_stopped(client: HttpDockerRunnerClient, docker_api: docker.APIClient) -> None:
    """Results are sorted by creation time (the engine's seconds), then id; stopped ones only with all=true."""
    opts = sleeper_opts(labels={**SESSION_LABELS, "case": "order"}, auto_remove=False)
    first = client.start_container(opts)
    second = client.start_container(opts)
    try:
        listed = docker_api.containers(all=True, filters={"label": "case=order"})
        expected = [item["Id"] for item in sorted(listed, key=lambda item: (item["Created"], item["Id"]))]
        assert sorted(expected) == sorted([first.container_id, second.container_id])
        assert client.find_by_labels({"case": "order"}) == expected
        client.stop_container(first.container_id, timeout_sec=0)
        assert client.find_by_labels({"case": "order"}) == [second.container_id]
        assert client.find_by_labels({"case": "order"}, all_containers=True) == expected
    finally:
        for started in (first, second):
            client.remove_container(started.container_id, force=True)


def test_every_option_reaches_the_engine(client: HttpDockerRunnerClient) -> None:
    """entrypoint, env, workingDir, resources and tty are applied to the created container."""
    opts = ContainerOpts(
        image=TEST_IMAGE,
        name="dr-test-options-" + SESSION_LABELS["dev.docker-runner.test-session"],
        entrypoint=["sleep"],
        cmd=["3600"],
        env={"GREETING": "hi"},
        working_dir="/tmp",
        labels=SESSION_LABELS,
        tty=True,
        resources=Resources(memory_bytes=64 * 1024 * 1024, nano_cpus=500_000_000, pids_limit=50),
        anonymous_volumes=["/scratch"],
    )
    started = client.start_container(opts)
    try:
        assert started.name == opts.name
        document = client.inspect_container(started.container_id)
        config, host = document["Config"], document["HostConfig"]
        assert config["Entrypoint"] == ["sleep"] and config["Cmd"] == ["3600"]
        assert "GREETING=hi" in config["Env"] and config["WorkingDir"] == "/tmp" and config["Tty"] is True
        assert (host["Memory"], host["NanoCpus"], host["PidsLimit"]) == (64 * 1024 * 1024, 500_000_000, 50)
        assert "/scratch" in config["Volumes"]
        assert client.exec_run(started.container_id, "echo $GREETING; pwd").stdout == "hi\n/tmp\n"
    finally:
        client.remove_container(started.container_id, force=True, remove_volumes=True)


def test_list_by_volume(client: HttpDockerRunnerClient, docker_api: docker.APIClient) -> None:
    """A named volume in binds is created as the runner's own; listByVolume and volumes/remove see it."""
    volume = "dr-test-volume-" + SESSION_LABELS["dev.docker-runner.test-session"]
    try:
        started = client.start_container(sleeper_opts(binds=[f"{volume}:/data"]))
        try:
            assert client.list_by_volume(volume) == [started.container_id]
            assert docker_api.inspect_volume(volume)["Labels"]["dev.docker-runner.managed"] == "true"
        finally:
            client.remove_container(started.container_id, force=True)
        assert client.list_by_volume(volume) == []
        client.remove_volume(volume)
        client.remove_volume(volume)  # gone already: done, as for containers
        assert client.list_by_volume(volume) == []
    finally:
        if any(v["Name"] == volume for v in docker_api.volumes().get("Volumes") or []):
            docker_api.remove_volume(volume, force=True)


def test_failed_start_leaves_no_container(client: HttpDockerRunnerClient, docker_api: docker.APIClient) -> None:
    """A container whose start fails is removed, and the engine's 400 and message reach the client."""
    labels = {**SESSION_LABELS, "case": "failed-start"}
    # without the default init as PID 1, a missing binary fails the start itself
    opts = ContainerOpts(
        image=TEST_IMAGE, cmd=["/no/such/binary"], labels=labels, create_extras={"HostConfig": {"Init": False}}
    )
    with pytest.raises(ValidationFailed) as caught:
        client.start_container(opts)
    assert caught.value.status_code == 400 and "/no/such/binary" in caught.value.message
    assert docker_api.containers(all=True, filters={"label": "case=failed-start"}) == []


def test_unknown_image_is_404(client: HttpDockerRunnerClient) -> None:
    with pytest.raises(NotFound) as caught:
        client.start_container(ContainerOpts(image="runner-test/absent:never", labels=SESSION_LABELS))
    assert caught.value.code == "no_such_image"


def test_ensure_image(client: HttpDockerRunnerClient) -> None:
    """A present image needs no pull; an absent one is pulled, and the engine's 5xx (no registry) is a 502."""
    client.ensure_image(TEST_IMAGE)
    with pytest.raises(UpstreamError) as caught:
        client.ensure_image("runner-test/absent:never")
    assert (caught.value.status_code, caught.value.code, caught.value.retryable) == (502, "docker_error", True)
    assert caught.value.details["dockerStatus"] == 500


def test_touch_missing_container_is_404(client: HttpDockerRunnerClient) -> None:
    with pytest.raises(NotFound):
        client.touch_container("does-not-exist-xyz")


@pytest.mark.parametrize("image", ["..", "../containers", "busybox/../../containers", "a//b", "-x", "a b"])
def test_ensure_refuses_what_is_not_an_image_reference(client: HttpDockerRunnerClient, image: str) -> None:
    """An "image" such as ../containers would otherwise be spliced into the engine's URL path."""
    with pytest.raises(ValidationFailed) as caught:
        client.ensure_image(image)
    assert caught.value.details["field"] == "image"
