"""``docker-runner-client`` jobs, job submit|show|events|cancel and pools, as real subprocesses."""

from __future__ import annotations

import json
from pathlib import Path

import docker
import pytest

from docker_runner.workloads.pool import POOL_LABEL
from docker_runner_client import HttpDockerRunnerClient
from tests.support.cli import cli, text
from tests.support.docker_env import TEST_IMAGE
from tests.support.server import RunningServer, make_settings, running_runner
from tests.support.waiting import wait_for

pytestmark = pytest.mark.docker

WORKER = 'read line; echo "got $line"; echo "{\\"result\\": 42}"; echo warn >&2; exit 4'


def test_submit_and_follow_passes_the_jobs_exit_code(
    runner: RunningServer, client: HttpDockerRunnerClient, tmp_path: Path
) -> None:
    """job submit -f: the id, output lines and JSON messages on stdout, stderr lines and status on
    stderr, and the job's exit code as the CLI's; the input may come from a file."""
    source = tmp_path / "input.json"
    source.write_text('{"n": 2}')
    args = ["job", "submit", "-f", "--input", f"@{source}", "--command", WORKER, "--label", "cli=jobs", TEST_IMAGE]
    code, stdout, stderr = text(cli(runner.url, *args))
    job_id, *lines = stdout.splitlines()
    assert (code, lines) == (4, ['got {"n":2}', '{"result":42}'])
    assert "warn" in stderr.splitlines()
    assert f"job {job_id} error (exit 4): job_failed:" in stderr
    listed = text(cli(runner.url, "jobs"))[1]
    assert any(line.split()[:2] == [job_id, "error"] for line in listed.splitlines()), listed
    shown = json.loads(text(cli(runner.url, "job", "show", "--json", job_id))[1])
    assert (shown["jobId"], shown["exitCode"], shown["labels"], shown["error"]["code"]) == (
        job_id,
        4,
        {"cli": "jobs"},
        "job_failed",
    )
    assert [job.job_id for job in client.jobs() if job.job_id == job_id] == [job_id]


def test_events_so_far_cancel_and_follow_to_the_end(runner: RunningServer) -> None:
    """job events without -f prints what the runner holds and stops while the job runs; cancel ends
    it; job events -f then replays to the final update and exits 1 (cancelled); --json: one per line."""
    command = 'echo "{\\"step\\": 1}"; echo started; while true; do sleep 1; done'
    code, stdout, _ = text(cli(runner.url, "job", "submit", "--input", "null", "--command", command, TEST_IMAGE))
    job_id = stdout.strip()
    assert code == 0 and len(job_id) == 32

    def held() -> list[dict[str, object]]:
        lines = text(cli(runner.url, "job", "events", "--json", job_id))[1].splitlines()
        events = [json.loads(line) for line in lines]
        return events if any(event.get("line") == "started" for event in events) else []

    events = wait_for(held, timeout=60, interval=0.2, what="the job's output to be held")
    assert {"type": "message", "id": 3, "message": {"step": 1}} in events
    assert events[-1]["type"] == "log" and text(cli(runner.url, "job", "show", job_id))[1].split()[3] == "running"
    assert text(cli(runner.url, "job", "cancel", job_id))[:2] == (0, f"{job_id} cancelled\n")
    code, stdout, stderr = text(cli(runner.url, "job", "events", "-f", job_id))
    assert (code, stdout) == (1, '{"step":1}\nstarted\n')
    assert stderr.splitlines()[-1].startswith(f"job {job_id} cancelled")
    assert text(cli(runner.url, "job", "show", "no-such-job"))[0] == 103


def test_pools_table_and_json(docker_api: docker.APIClient) -> None:
    """pools shows each pool's figures as a table, and as JSON with the runner's field names."""
    config = {"image": TEST_IMAGE, "min": 1, "max": 2}
    with running_runner(make_settings(pools=json.dumps([config]), pool_maintenance_ms=200)) as pooled:
        labels = [POOL_LABEL, f"dev.docker-runner.instance={pooled.settings.instance}"]
        wait_for(lambda: docker_api.containers(filters={"label": labels}), timeout=60, what="the pool to fill")
        code, stdout, _ = text(cli(pooled.url, "pools"))
        header, row = stdout.splitlines()
        assert code == 0 and header.split()[:4] == ["IMAGE", "MIN", "MAX", "SIZE"]
        assert row.split()[:3] == [TEST_IMAGE, "1", "2"]
        pools = json.loads(text(cli(pooled.url, "pools", "--json"))[1])
        assert [(pool["image"], pool["min"], pool["max"]) for pool in pools] == [(TEST_IMAGE, 1, 2)]
        assert {"inUse", "healthFailures", "acquireWaitMsAvg"} <= set(pools[0])
    wait_for(lambda: not docker_api.containers(all=True, filters={"label": labels}), timeout=60, what="shutdown")
