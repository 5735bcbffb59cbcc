"""Pools of pre-warmed containers behind /v1/run and /v1/test: warm-up, take, replacement, health,
age-out, exhaustion, and the clean-up at shutdown and start-up."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import docker
import docker.errors
import httpx
import pytest

from docker_runner.containers.spec import INSTANCE_LABEL, MANAGED_LABEL, ONESHOT_LABEL
from docker_runner.runtime import Runtime
from docker_runner.workloads.pool import POOL_LABEL
from docker_runner_client import DockerRunnerError, HttpDockerRunnerClient, PoolStats, RunResult
from tests.support.docker_env import SESSION_ID, SESSION_LABEL, SESSION_LABELS, TEST_IMAGE
from tests.support.server import TEST_SECRET, RunningServer, make_settings, running_runner
from tests.support.waiting import wait_for

pytestmark = pytest.mark.docker


def _pool_settings(maintenance_ms: int = 200, acquire_timeout_ms: int = 10_000, **pool: Any) -> Any:
    config = {"image": TEST_IMAGE, "min": 2, "max": 3, **pool}
    return make_settings(
        pools=json.dumps([config]), pool_maintenance_ms=maintenance_ms, pool_acquire_timeout_ms=acquire_timeout_ms
    )


def _pooled_ids(api: docker.APIClient, server: RunningServer) -> set[str]:
    labels = [POOL_LABEL, f"dev.docker-runner.instance={server.settings.instance}"]
    return {item["Id"] for item in api.containers(all=True, filters={"label": labels})}


def _instance_ids(api: docker.APIClient, server: RunningServer) -> set[str]:
    label = f"dev.docker-runner.instance={server.settings.instance}"
    return {item["Id"] for item in api.containers(all=True, filters={"label": label})}


@contextmanager
def pooled_runner(api: docker.APIClient, **settings: Any) -> Iterator[tuple[RunningServer, HttpDockerRunnerClient]]:
    """A runner with one pool of the test image; every container of its instance is gone afterwards."""
    with running_runner(_pool_settings(**settings)) as server:
        try:
            with HttpDockerRunnerClient(server.url, TEST_SECRET, max_retries=0) as client:
                yield server, client
        finally:
            server.stop()
            left = _instance_ids(api, server)
            for container_id in left:
                api.remove_container(container_id, force=True)
    assert not left, f"the runner left {len(left)} container(s) at shutdown"


def _stats(client: HttpDockerRunnerClient) -> PoolStats:
    (stats,) = client.pools()
    return stats


def _warm(client: HttpDockerRunnerClient, idle: int) -> PoolStats:
    return wait_for(lambda: (s := _stats(client)).idle >= idle and s, timeout=30, what=f"{idle} idle containers")


def _hostname(result: RunResult) -> str:
    assert result.exit_code == 0, result
    return result.stdout.strip()


def test_pool_warms_up_and_runs_take_a_warm_container(docker_api: docker.APIClient) -> None:
    """min containers start ahead of demand, managed like any other; a run takes one of them."""
    with pooled_runner(docker_api) as (server, client):
        stats = _warm(client, 2)
        assert (stats.image, stats.min, stats.max, stats.size, stats.in_use) == (TEST_IMAGE, 2, 3, 2, 0)
        warm = _pooled_ids(docker_api, server)
        managed = docker_api.containers(all=True, filters={"label": [f"{MANAGED_LABEL}=true", POOL_LABEL]})
        assert len(warm) == 2 and warm <= {item["Id"] for item in managed}

        result = client.run(TEST_IMAGE, "hostname; echo leftover > /tmp/state")
        assert result.pooled
        assert any(container_id.startswith(_hostname(result)) for container_id in warm), "not a warm container"

        stats = _stats(client)
        assert stats.acquisitions == 1 and stats.acquire_wait_ms_avg < 1000


def test_used_container_is_destroyed_replaced_and_never_handed_out_again(docker_api: docker.APIClient) -> None:
    """Four runs, four containers: nothing of one run is seen by the next; used ones are replaced."""
    with pooled_runner(docker_api) as (server, client):
        _warm(client, 2)
        hosts = []
        for _ in range(4):
            result = client.run(TEST_IMAGE, "hostname; cat /tmp/state 2>/dev/null; echo used > /tmp/state")
            assert result.pooled
            hosts.append(_hostname(result))  # no "used" line: nothing of an earlier run was there
        assert len(set(hosts)) == 4, f"a container served two runs: {hosts}"

        stats = wait_for(
            lambda: (s := _stats(client)).destroyed >= 4 and s.idle == 2 and s, timeout=30, what="replacements"
        )
        assert stats.created >= 6 and stats.in_use == 0
        alive = _pooled_ids(docker_api, server)
        assert not any(container_id.startswith(host) for host in hosts for container_id in alive)


def test_test_runs_use_the_pool(docker_api: docker.APIClient) -> None:
    """/v1/test takes a pooled container too, and the patch lands in it."""
    with pooled_runner(docker_api) as (_server, client):
        _warm(client, 2)
        result = client.run_tests(TEST_IMAGE, {"run_tests.sh": b"echo from the patch\n"})
        assert (result.exit_code, result.pooled) == (0, True)
        assert "from the patch" in result.test_output


def test_a_container_killed_behind_the_pools_back_is_replaced(docker_api: docker.APIClient) -> None:
    """A dead container found at take time is replaced, not handed out, before any maintenance round."""
    with pooled_runner(docker_api, maintenance_ms=60_000) as (server, client):
        _warm(client, 2)
        for container_id in _pooled_ids(docker_api, server):
            docker_api.kill(container_id)
        # no maintenance round has run yet: the run itself must not be handed a dead container
        result = client.run(TEST_IMAGE, "echo alive")
        assert (result.exit_code, result.stdout, result.pooled) == (0, "alive\n", True)
        assert _stats(client).health_failures >= 1


def test_maintenance_replaces_the_unhealthy(docker_api: docker.APIClient) -> None:
    """A failing health command and a dead container are both replaced by maintenance."""
    with pooled_runner(docker_api, healthCmd="test ! -e /tmp/sick") as (server, client):
        _warm(client, 2)
        before = _pooled_ids(docker_api, server)
        sick = sorted(before)[0]
        docker_api.kill(sorted(before)[1])
        exec_id = docker_api.exec_create(sick, ["touch", "/tmp/sick"])["Id"]
        docker_api.exec_start(exec_id)

        def replaced() -> bool:
            stats = _stats(client)
            now = _pooled_ids(docker_api, server)
            return stats.health_failures >= 2 and stats.idle == 2 and not (now & before)

        wait_for(replaced, timeout=30, what="both the dead and the sick container to be replaced")


def test_over_age_containers_are_replaced(docker_api: docker.APIClient) -> None:
    """Past maxAgeMs a container is replaced although healthy."""
    with pooled_runner(docker_api, maxAgeMs=1000) as (server, client):
        _warm(client, 2)
        first = _pooled_ids(docker_api, server)
        wait_for(
            lambda: _stats(client).idle == 2 and not (_pooled_ids(docker_api, server) & first),
            timeout=30,
            what="the aged containers to be replaced",
        )
        assert _stats(client).health_failures == 0


def test_exhausted_pool_answers_503_retryable(docker_api: docker.APIClient) -> None:
    """Empty and at max: a run waits its deadline, then 503 pool_exhausted (retryable)."""
    with pooled_runner(docker_api, acquire_timeout_ms=300, min=1, max=1) as (server, client):
        _warm(client, 1)
        outcome: list[RunResult] = []
        worker = threading.Thread(target=lambda: outcome.append(client.run(TEST_IMAGE, "sleep 60")))
        worker.start()
        try:
            wait_for(lambda: _stats(client).in_use == 1, what="the first run to hold the only container")
            with pytest.raises(DockerRunnerError) as caught:
                client.run(TEST_IMAGE, "echo never")
            error = caught.value
            assert (error.status_code, error.code, error.retryable) == (503, "pool_exhausted", True)
            response = httpx.get(f"{server.url}/metrics")
            assert 'docker_runner_pool_in_use{pool="runner-test/busybox:latest"} 1.0' in response.text
        finally:
            for container_id in _pooled_ids(docker_api, server):
                docker_api.kill(container_id)  # ends the sleeping run
            worker.join(timeout=30)
        assert outcome and outcome[0].exit_code is None, "the run ended without its container"

        result = wait_for(lambda: _run_or_none(client), timeout=30, what="the replacement to take runs")
        assert (result.exit_code, result.stdout) == (0, "again\n")


def _run_or_none(client: HttpDockerRunnerClient) -> RunResult | None:
    try:
        return client.run(TEST_IMAGE, "echo again")
    except DockerRunnerError as error:
        if error.code != "pool_exhausted":
            raise
        return None


def test_stats_are_on_metrics(docker_api: docker.APIClient) -> None:
    """The pool's figures are on /metrics too."""
    with pooled_runner(docker_api) as (server, client):
        _warm(client, 2)
        client.run(TEST_IMAGE, "true")
        text = httpx.get(f"{server.url}/metrics").text
        pool = 'pool="runner-test/busybox:latest"'
        assert f"docker_runner_pool_acquisitions_total{{{pool}}} 1.0" in text
        assert f"docker_runner_pool_acquire_wait_seconds_count{{{pool}}} 1.0" in text
        assert f"docker_runner_pool_created_total{{{pool}}}" in text
        assert f"docker_runner_pool_idle{{{pool}}}" in text


def test_startup_sweeps_what_an_earlier_process_left(docker_api: docker.APIClient) -> None:
    """Pooled containers of this instance from an earlier process are removed at start."""
    settings = _pool_settings(min=1)
    labels = {
        **SESSION_LABELS,
        POOL_LABEL: TEST_IMAGE,
        "dev.docker-runner.managed": "true",
        "dev.docker-runner.instance": settings.instance,
    }
    leftover = docker_api.create_container(TEST_IMAGE, ["sleep", "600"], labels=labels)["Id"]
    docker_api.start(leftover)
    with running_runner(settings) as server:
        wait_for(
            lambda: leftover not in _pooled_ids(docker_api, server) and len(_pooled_ids(docker_api, server)) == 1,
            timeout=30,
            what="the leftover to be removed and the pool warmed",
        )
    with pytest.raises(docker.errors.NotFound):
        docker_api.inspect_container(leftover)
    assert not _instance_ids(docker_api, server), "the pool was not emptied at shutdown"


def test_shutdown_removes_containers_in_use(docker_api: docker.APIClient) -> None:
    """Shutdown removes a pooled container a run still holds."""
    with running_runner(_pool_settings(min=1, max=1)) as server:
        client = HttpDockerRunnerClient(server.url, TEST_SECRET, max_retries=0)
        worker = threading.Thread(target=lambda: _swallow(lambda: client.run(TEST_IMAGE, "sleep 60")))
        worker.start()
        try:
            wait_for(lambda: _stats(client).in_use == 1, timeout=30, what="a run holding the container")
        finally:
            server.stop()
        worker.join(timeout=30)
        client.close()
    assert not worker.is_alive()
    assert not _instance_ids(docker_api, server)


def _swallow(call: Any) -> None:
    with contextlib.suppress(DockerRunnerError, httpx.HTTPError):  # the runner went away mid-run: the point
        call()


def test_idle_containers_above_min_go_after_their_idle_ttl(docker_api: docker.APIClient) -> None:
    """A container nobody took (its run gave up) is idle above min: removed once idleTtlMs has passed."""
    with pooled_runner(docker_api, maintenance_ms=100, acquire_timeout_ms=0, min=0, max=1, idleTtlMs=600) as (
        server,
        client,
    ):
        with pytest.raises(DockerRunnerError) as caught:
            client.run(TEST_IMAGE, "true")  # gives up at once; the container made for it stays idle
        assert caught.value.code == "pool_exhausted"
        _warm(client, 1)
        landed = time.monotonic()
        wait_for(
            lambda: _stats(client).idle == 0 and not _pooled_ids(docker_api, server),
            timeout=30,
            what="the idle extra to be removed",
        )
        assert time.monotonic() - landed >= 0.4, "removed before its idle TTL"
        stats = _stats(client)
        assert (stats.destroyed, stats.health_failures, stats.size) == (1, 0, 0)


def test_a_pool_that_cannot_create_answers_its_failure_fast(docker_api: docker.APIClient) -> None:
    """A missing image is a 404 at once, not a retryable pool_exhausted after the whole wait."""
    missing = "runner-test/missing-image:never"
    with pooled_runner(docker_api, image=missing, min=1, max=1) as (_server, client):
        started = time.monotonic()
        with pytest.raises(DockerRunnerError) as caught:
            client.run(missing, "true")
        assert time.monotonic() - started < 5, "the run waited as if the pool were only busy"
        error = caught.value
        assert (error.status_code, error.code, error.retryable) == (404, "no_such_image", False)
        assert missing in error.message


def test_a_used_container_counts_until_it_is_destroyed(docker_api: docker.APIClient) -> None:
    """Released, a container still counts in size: its replacement waits, the pool never exceeds max."""
    runtime = Runtime.create(_pool_settings(min=1, max=1))
    try:
        asyncio.run(_release_then_top_up(runtime))
    finally:
        runtime.engine.close()
    label = f"dev.docker-runner.instance={runtime.settings.instance}"
    assert not docker_api.containers(all=True, filters={"label": label})


async def _release_then_top_up(runtime: Runtime) -> None:
    pool = runtime.pools.get(TEST_IMAGE)
    assert pool is not None
    await runtime.pools.start()
    try:
        pooled = await pool.acquire(30)
        pool.release(pooled)
        assert (pool.size, pool.stats()["inUse"]) == (1, 0)
        pool.top_up()
        assert pool.stats()["creating"] == 0, "a replacement started while the used container still exists"
        deadline = time.monotonic() + 30
        while pool.stats()["idle"] < 1:  # the replacement, once the used one is gone
            assert time.monotonic() < deadline, "no replacement"
            await asyncio.sleep(0.05)
        assert pool.stats()["size"] == 1 and pool.counters.destroyed == 1
    finally:
        await runtime.pools.close()


def test_a_run_that_waited_for_the_pool_is_answered_after_its_own_timeout(docker_api: docker.APIClient) -> None:
    """The client waits for the pool wait too: a run timing out after it gets 200 timedOut, no RunnerTimeout."""
    # a patient pool (20 s, within the client's 30 s margin): the replacement of the held container
    # may take a while on a loaded machine
    with pooled_runner(docker_api, min=1, max=1, acquire_timeout_ms=20_000) as (server, client):
        _warm(client, 1)
        holder = threading.Thread(target=lambda: client.run(TEST_IMAGE, "sleep 6"))
        holder.start()
        try:
            wait_for(lambda: _stats(client).in_use == 1, what="the first run to hold the only container")
            # a 1 s client default: without the pool margin it would give up 5.5 s in, before the answer
            with HttpDockerRunnerClient(server.url, TEST_SECRET, timeout_ms=1000, max_retries=0) as impatient:
                result = impatient.run(TEST_IMAGE, "echo begun; sleep 30", timeout_ms=500)
        finally:
            holder.join(timeout=30)
        assert (result.timed_out, result.pooled, result.stdout) == (True, True, "begun\n")


def test_shutdown_while_the_pool_warms_up_leaves_nothing(docker_api: docker.APIClient) -> None:
    """Containers still being created when shutdown begins are removed once they exist."""
    with running_runner(_pool_settings(min=3, max=3)) as server:
        pool = server.runtime.pools.get(TEST_IMAGE)
        assert pool is not None and pool.stats()["creating"] >= 1, "warm-up was over before the stop"
    assert not _instance_ids(docker_api, server)


def test_startup_sweeps_leftovers_even_without_pools(docker_api: docker.APIClient) -> None:
    """Pooled and one-shot containers of this instance go at start, pools or not; nothing else does."""
    settings = make_settings()
    mine = {**SESSION_LABELS, MANAGED_LABEL: "true", INSTANCE_LABEL: settings.instance}

    def leftover(labels: dict[str, str]) -> str:
        return str(docker_api.create_container(TEST_IMAGE, ["sleep", "600"], labels=labels)["Id"])

    swept = {leftover({**mine, POOL_LABEL: TEST_IMAGE}), leftover({**mine, ONESHOT_LABEL: "true"})}
    kept = {
        leftover({**mine, INSTANCE_LABEL: "another-runner", ONESHOT_LABEL: "true"}),
        leftover(mine),  # a container of this instance that is no one-shot's: the reaper's, not the sweep's
    }
    try:
        with running_runner(settings):
            wait_for(lambda: not swept & _all_ids(docker_api), timeout=30, what="the leftovers of this instance to go")
        assert kept <= _all_ids(docker_api)
    finally:
        for container_id in kept:
            docker_api.remove_container(container_id, force=True)


def _all_ids(api: docker.APIClient) -> set[str]:
    """Every container of this test session, whatever its state."""
    return {item["Id"] for item in api.containers(all=True, filters={"label": f"{SESSION_LABEL}={SESSION_ID}"})}
