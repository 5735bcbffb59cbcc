"""ttlSeconds and touch: the background reaper, including across a runner restart."""

from __future__ import annotations

import time

import docker
import pytest

from docker_runner_client import HttpDockerRunnerClient
from tests.conftest import sleeper_opts
from tests.support.server import TEST_SECRET, RunningServer, make_settings, running_runner
from tests.support.waiting import wait_for

pytestmark = pytest.mark.docker


def _exists(api: docker.APIClient, container_id: str) -> bool:
    return bool(api.containers(all=True, filters={"id": container_id}))


def test_untouched_container_is_reaped(client: HttpDockerRunnerClient, docker_api: docker.APIClient) -> None:
    started = client.start_container(sleeper_opts(ttl_seconds=1))
    wait_for(lambda: not _exists(docker_api, started.container_id), timeout=15, what="the TTL reaper")


def test_touch_keeps_a_container_alive(client: HttpDockerRunnerClient, docker_api: docker.APIClient) -> None:
    """Touched more often than its TTL, a container stays; left alone, it goes."""
    started = client.start_container(sleeper_opts(ttl_seconds=2))
    touched_until = time.monotonic() + 4
    while time.monotonic() < touched_until:
        client.touch_container(started.container_id)
        time.sleep(0.5)
        assert _exists(docker_api, started.container_id)
    wait_for(lambda: not _exists(docker_api, started.container_id), timeout=15, what="the TTL reaper")


def test_a_running_exec_counts_as_use(client: HttpDockerRunnerClient, docker_api: docker.APIClient) -> None:
    """A container is not reaped under a command that outlasts its TTL; once idle again, it is."""
    started = client.start_container(sleeper_opts(ttl_seconds=2))
    client.touch_container(started.container_id)  # the exec starts well inside the TTL, however loaded the machine
    result = client.exec_run(started.container_id, "sleep 4; echo survived")
    assert (result.stdout, result.exit_code) == ("survived\n", 0)
    wait_for(lambda: not _exists(docker_api, started.container_id), timeout=15, what="the TTL reaper")


def test_records_of_gone_containers_are_dropped(runner: RunningServer, client: HttpDockerRunnerClient) -> None:
    """The reaper's memory holds only containers it can still reap: removed ones are forgotten."""
    started = client.start_container(sleeper_opts(ttl_seconds=600))
    client.touch_container(started.container_id)
    client.remove_container(started.container_id, force=True)
    touches = runner.runtime.touches
    wait_for(lambda: started.container_id not in touches, timeout=10, what="the record to go")


def test_containers_without_ttl_are_left_alone(runner: RunningServer, client: HttpDockerRunnerClient) -> None:
    started = client.start_container(sleeper_opts())
    try:
        time.sleep(1.0)  # five reaper rounds at the test interval of 200 ms
        assert client.inspect_container(started.container_id)["State"]["Running"]
    finally:
        client.remove_container(started.container_id, force=True)


def test_reaping_survives_a_restart(docker_api: docker.APIClient) -> None:
    """A runner that restarts still reaps what the previous one created, never before a full TTL."""
    settings = make_settings()
    with (
        running_runner(settings.with_overrides(reaper_interval_ms=60_000)) as first,
        HttpDockerRunnerClient(first.url, TEST_SECRET) as client,
    ):
        started = client.start_container(sleeper_opts(ttl_seconds=3))
    restarting_at = time.monotonic()
    with running_runner(settings):
        assert _exists(docker_api, started.container_id)
        wait_for(lambda: not _exists(docker_api, started.container_id), timeout=15, what="reaping after restart")
    # the new runner counts the container as used when it started: a full TTL before reaping
    assert time.monotonic() - restarting_at >= 2.8
