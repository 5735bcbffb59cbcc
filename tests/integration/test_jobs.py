"""Jobs (POST/GET/DELETE /v1/jobs, GET /v1/jobs/{id}/events) against the real engine: input on
stdin, JSON lines back as messages, status changes, limits, and no container left afterwards."""

from __future__ import annotations

import asyncio
import threading
import uuid

import docker
import httpx
import pytest

from docker_runner.job_spec import JOB_LABEL
from docker_runner.settings import Settings
from docker_runner_client import (
    AsyncHttpDockerRunnerClient,
    Forbidden,
    HttpDockerRunnerClient,
    Job,
    JobEvent,
    JobEventsDropped,
    JobLog,
    JobMessage,
    JobResources,
    JobUpdate,
    NotFound,
    ValidationFailed,
)
from tests.support.docker_env import SESSION_LABELS, TEST_IMAGE
from tests.support.server import TEST_SECRET, RunningServer, make_settings, running_runner
from tests.support.signed import error_of, signed_request
from tests.support.waiting import wait_for

pytestmark = pytest.mark.docker


def _job_containers(api: docker.APIClient, server: RunningServer, job_id: str | None = None) -> list[str]:
    job_filter = JOB_LABEL if job_id is None else f"{JOB_LABEL}={job_id}"
    labels = [job_filter, f"dev.docker-runner.instance={server.settings.instance}"]
    return [item["Id"] for item in api.containers(all=True, filters={"label": labels})]


def _submit(client: HttpDockerRunnerClient, script: str, job_input: object = None, **options: object) -> Job:
    return client.submit_job(
        TEST_IMAGE,
        job_input,
        command=["sh", "-c", script],
        labels=dict(SESSION_LABELS),
        **options,  # type: ignore[arg-type]
    )


def _updates(events: list[JobEvent]) -> list[str]:
    return [event.status for event in events if isinstance(event, JobUpdate)]


def test_input_comes_back_as_a_message(
    runner: RunningServer, client: HttpDockerRunnerClient, docker_api: docker.APIClient
) -> None:
    """``cat`` echoes the input line: one message equal to the input, then completed with exit 0."""
    job_input = {"hello": "wörld", "n": [1, 2.5, None], "nested": {"ok": True}}
    submitted = _submit(client, "cat", job_input)
    assert submitted.status == "starting" and submitted.job_id
    events = list(client.job_events(submitted.job_id))
    assert _updates(events) == ["starting", "running", "completed"]
    assert [event.message for event in events if isinstance(event, JobMessage)] == [job_input]
    final = events[-1]
    assert isinstance(final, JobUpdate) and (final.exit_code, final.error) == (0, None)
    ended = client.job(submitted.job_id)
    assert (ended.status, ended.exit_code, ended.messages, ended.logs) == ("completed", 0, 1, 0)
    assert ended.created_at <= (ended.started_at or 0) <= (ended.ended_at or 0)
    assert not _job_containers(docker_api, runner, submitted.job_id)


def test_json_and_plain_lines_on_both_streams(
    runner: RunningServer, client: HttpDockerRunnerClient, docker_api: docker.APIClient
) -> None:
    """Only stdout lines that are JSON objects are messages; arrays, text and stderr lines are logs."""
    script = (
        "echo '{\"step\":1}'; echo plain text; echo '[1,2]'; echo '{\"on\":\"stderr\"}' >&2;"
        " echo 'warn ü' >&2; echo '{\"broken\":'; echo NaN; echo '{\"step\":2}'; printf 'no newline'"
    )
    submitted = _submit(client, script)
    events = list(client.job_events(submitted.job_id))
    assert [event.message for event in events if isinstance(event, JobMessage)] == [{"step": 1}, {"step": 2}]
    stdout = [event.line for event in events if isinstance(event, JobLog) and event.stream == "stdout"]
    stderr = [event.line for event in events if isinstance(event, JobLog) and event.stream == "stderr"]
    assert stdout == ["plain text", "[1,2]", '{"broken":', "NaN", "no newline"]
    assert stderr == ['{"on":"stderr"}', "warn ü"]
    ended = client.job(submitted.job_id)
    assert (ended.status, ended.messages, ended.logs) == ("completed", 2, 7)
    ids = [event.id for event in events if not isinstance(event, JobEventsDropped)]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert not _job_containers(docker_api, runner, submitted.job_id)


def test_non_zero_exit_is_an_error_with_its_code(
    runner: RunningServer, client: HttpDockerRunnerClient, docker_api: docker.APIClient
) -> None:
    submitted = _submit(client, "echo about to fail >&2; exit 3")
    events = list(client.job_events(submitted.job_id))
    final = events[-1]
    assert isinstance(final, JobUpdate) and final.status == "error" and final.exit_code == 3
    assert final.error is not None and final.error.code == "job_failed" and "3" in final.error.message
    assert [event.line for event in events if isinstance(event, JobLog)] == ["about to fail"]
    assert not _job_containers(docker_api, runner, submitted.job_id)


def test_over_its_timeout_is_killed(
    runner: RunningServer, client: HttpDockerRunnerClient, docker_api: docker.APIClient
) -> None:
    submitted = _submit(client, "echo started; sleep 120", timeout_ms=500)
    assert submitted.timeout_ms == 500
    events = list(client.job_events(submitted.job_id))
    assert _updates(events) == ["starting", "running", "error"]
    final = client.job(submitted.job_id)
    assert final.error is not None and final.error.code == "job_timeout"
    assert final.error.message == "Job timed out after 500ms"
    assert JobLog("stdout", "started", 3) in events
    assert not _job_containers(docker_api, runner, submitted.job_id)


def test_cancel_while_running(
    runner: RunningServer, client: HttpDockerRunnerClient, docker_api: docker.APIClient
) -> None:
    """DELETE kills and removes the container and answers the cancelled job; again, the same state."""
    submitted = _submit(client, "echo ready; sleep 120")
    seen: list[JobEvent] = []
    for event in client.job_events(submitted.job_id):
        seen.append(event)
        if isinstance(event, JobLog) and event.line == "ready":
            assert _job_containers(docker_api, runner, submitted.job_id)
            cancelled = client.cancel_job(submitted.job_id)
            assert (cancelled.status, cancelled.error) == ("cancelled", None)
            assert not _job_containers(docker_api, runner, submitted.job_id)
    assert _updates(seen) == ["starting", "running", "cancelled"]
    again = client.cancel_job(submitted.job_id)
    assert (again.status, again.ended_at) == ("cancelled", cancelled.ended_at)
    with pytest.raises(NotFound) as missing:
        client.cancel_job("no-such-job")
    assert missing.value.code == "no_such_job"
    with pytest.raises(NotFound):
        client.job("no-such-job")
    with pytest.raises(NotFound):
        list(client.job_events("no-such-job"))


def test_late_subscriber_and_resume_after_an_id(
    runner: RunningServer, client: HttpDockerRunnerClient, docker_api: docker.APIClient
) -> None:
    """A subscriber that comes after the end gets everything; Last-Event-ID resumes after that event."""
    submitted = _submit(client, "for i in 1 2 3 4 5; do echo line $i; done")
    wait_for(lambda: client.job(submitted.job_id).ended, timeout=30, what="the job to end")
    everything = list(client.job_events(submitted.job_id))
    lines = [event.line for event in everything if isinstance(event, JobLog)]
    assert lines == [f"line {i}" for i in range(1, 6)] and _updates(everything)[-1] == "completed"
    assert not any(isinstance(event, JobEventsDropped) for event in everything)
    third = everything[2]
    assert isinstance(third, JobLog) and third.id is not None
    resumed = list(client.job_events(submitted.job_id, last_event_id=third.id))
    assert resumed == everything[3:]
    assert not _job_containers(docker_api, runner, submitted.job_id)


def test_many_subscribers_each_get_everything(
    runner: RunningServer, client: HttpDockerRunnerClient, docker_api: docker.APIClient
) -> None:
    """Live subscribers, connected before the job prints, all receive every event in the same order."""
    submitted = _submit(
        client, "while [ ! -e /tmp/go ]; do sleep 0.05; done; for i in 1 2 3; do echo '{\"i\":'$i'}'; done"
    )
    received: list[list[JobEvent]] = [[], [], []]
    connected = [threading.Event() for _ in received]

    def follow(index: int) -> None:
        with HttpDockerRunnerClient(runner.url, TEST_SECRET) as own:
            for event in own.job_events(submitted.job_id):
                received[index].append(event)
                connected[index].set()

    threads = [threading.Thread(target=follow, args=(index,)) for index in range(len(received))]
    for thread in threads:
        thread.start()
    for flag in connected:
        assert flag.wait(30)
    client.exec_run(submitted.container_id, ["touch", "/tmp/go"])
    for thread in threads:
        thread.join(30)
    assert received[0] == received[1] == received[2]
    assert [event.message for event in received[0] if isinstance(event, JobMessage)] == [{"i": 1}, {"i": 2}, {"i": 3}]
    assert _updates(received[0])[-1] == "completed"
    assert not _job_containers(docker_api, runner, submitted.job_id)


def test_a_tiny_buffer_reports_what_it_dropped(docker_api: docker.APIClient) -> None:
    settings = make_settings(job_buffer_events=4)
    with running_runner(settings) as server, HttpDockerRunnerClient(server.url, TEST_SECRET) as client:
        submitted = _submit(client, "for i in $(seq 1 20); do echo line $i; done")
        wait_for(lambda: client.job(submitted.job_id).ended, timeout=30, what="the job to end")
        events = list(client.job_events(submitted.job_id))
        # 23 events: starting, running, 20 lines, completed; the last 4 are kept
        assert events[0] == JobEventsDropped(19)
        assert [event.line for event in events[1:4] if isinstance(event, JobLog)] == ["line 18", "line 19", "line 20"]
        assert _updates(events) == ["completed"] and client.job(submitted.job_id).events_dropped == 19
        # ids 20 to 23 are held: resuming after 19 misses nothing, after 10 misses 11 to 19
        assert list(client.job_events(submitted.job_id, last_event_id=19)) == events[1:]
        assert list(client.job_events(submitted.job_id, last_event_id=10)) == [JobEventsDropped(9), *events[1:]]
        assert not _job_containers(docker_api, server)


def test_memory_limit_is_enforced(
    runner: RunningServer, client: HttpDockerRunnerClient, docker_api: docker.APIClient
) -> None:
    """A job allocating 300 MiB under a 64 MiB limit is OOM-killed and ends in error."""
    info = docker_api.info()
    if not info.get("MemoryLimit"):
        pytest.skip("the engine reports MemoryLimit=false: no cgroup memory controller, limits are not enforced")
    submitted = _submit(client, "head -c 300m /dev/zero | tail", resources=JobResources(memory="64m"))
    events = list(client.job_events(submitted.job_id))
    final = events[-1]
    assert isinstance(final, JobUpdate)
    if final.status == "completed" and not info.get("SwapLimit"):
        pytest.skip("the engine reports SwapLimit=false: the hog swapped past its 64 MiB limit and exited 0")
    assert final.status == "error" and final.error is not None, final
    assert final.error.code == "job_oom" and final.exit_code == 137
    assert not _job_containers(docker_api, runner, submitted.job_id)


def test_environment_is_the_request_and_passthrough_only(docker_api: docker.APIClient) -> None:
    """Passed-through variables and the request's own reach the job; the runner's secret does not."""
    env = {
        "DOCKER_RUNNER_SHARED_SECRET": TEST_SECRET,
        "DOCKER_RUNNER_INSTANCE": "test-" + uuid.uuid4().hex[:8],
        "DOCKER_RUNNER_JOB_ENV_PASSTHROUGH": "RUNNER_TEST_PASSED, RUNNER_TEST_UNSET",
        "RUNNER_TEST_PASSED": "through",
        "RUNNER_TEST_NOT_LISTED": "hidden",
    }
    with (
        running_runner(Settings.from_env(env)) as server,
        HttpDockerRunnerClient(server.url, TEST_SECRET) as client,
    ):
        submitted = _submit(client, "env", env={"ASKED": "yes", "RUNNER_TEST_PASSED": "overridden?"})
        lines = [event.line for event in client.job_events(submitted.job_id) if isinstance(event, JobLog)]
        assert "ASKED=yes" in lines and "RUNNER_TEST_PASSED=overridden?" in lines
        assert not [line for line in lines if TEST_SECRET in line or line.startswith("DOCKER_RUNNER")]
        assert not [line for line in lines if line.startswith(("RUNNER_TEST_NOT_LISTED", "RUNNER_TEST_UNSET"))]
        passed = _submit(client, "env")
        lines = [event.line for event in client.job_events(passed.job_id) if isinstance(event, JobLog)]
        assert "RUNNER_TEST_PASSED=through" in lines
        assert not _job_containers(docker_api, server)


def test_bad_requests_name_the_field_and_create_nothing(
    runner: RunningServer, client: HttpDockerRunnerClient, docker_api: docker.APIClient
) -> None:
    before = set(_job_containers(docker_api, runner))
    for resources, field in (
        (JobResources(memory="lots"), "resources.memory"),
        (JobResources(memory=1024), "resources.memory"),
        (JobResources(cpus=0), "resources.cpus"),
        (JobResources(gpus=["0", ""]), "resources.gpus"),
    ):
        with pytest.raises(ValidationFailed) as invalid:
            _submit(client, "true", resources=resources)
        assert invalid.value.message.startswith(field + ":"), invalid.value.message
    with pytest.raises(Forbidden) as denied:  # GPUs only where the policy allows them
        _submit(client, "true", resources=JobResources(gpus="all"))
    assert denied.value.code == "policy_denied"
    with pytest.raises(ValidationFailed):
        client.submit_job(TEST_IMAGE, None, timeout_ms=-1)
    with pytest.raises(NotFound):
        client.submit_job("runner-test/absent:never", None)
    no_input = signed_request(runner.url, "POST", "/v1/jobs", json_body={"image": TEST_IMAGE})
    assert no_input.status_code == 400 and "input" in error_of(no_input)["message"]
    assert set(_job_containers(docker_api, runner)) == before


def test_list_keeps_a_bounded_history(docker_api: docker.APIClient) -> None:
    with (
        running_runner(make_settings(job_history=2)) as server,
        HttpDockerRunnerClient(server.url, TEST_SECRET) as client,
    ):
        ids = []
        for index in range(3):
            job = _submit(client, f"echo {index}")
            list(client.job_events(job.job_id))
            ids.append(job.job_id)
        assert [job.job_id for job in client.jobs()] == [ids[2], ids[1]]
        with pytest.raises(NotFound):
            client.job(ids[0])
        metrics = httpx.get(server.url + "/metrics").text
        assert 'docker_runner_jobs_total{status="completed"} 3.0' in metrics
        assert "docker_runner_jobs_active 0.0" in metrics


def test_runner_shutdown_cancels_jobs_and_removes_their_containers(docker_api: docker.APIClient) -> None:
    with running_runner(make_settings()) as server, HttpDockerRunnerClient(server.url, TEST_SECRET) as client:
        submitted = _submit(client, "sleep 120")
        wait_for(lambda: client.job(submitted.job_id).status == "running", timeout=30, what="the job to run")
        server.stop()
        assert server.runtime.jobs.get(submitted.job_id).status == "cancelled"
        assert not _job_containers(docker_api, server)


def test_async_client_follows_a_job(runner: RunningServer) -> None:
    async def follow() -> tuple[Job, list[JobEvent], list[Job]]:
        async with AsyncHttpDockerRunnerClient(runner.url, TEST_SECRET) as client:
            job = await client.submit_job(TEST_IMAGE, [1, "two"], command="cat", labels=dict(SESSION_LABELS))
            events = [event async for event in client.job_events(job.job_id)]
            return await client.job(job.job_id), events, await client.jobs()

    ended, events, listed = asyncio.run(follow())
    assert ended.status == "completed"
    assert [event for event in events if isinstance(event, JobLog)] == [JobLog("stdout", '[1,"two"]', 3)]
    assert ended.job_id in [job.job_id for job in listed]
