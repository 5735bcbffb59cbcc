"""``jobs``, ``job submit|show|events|cancel`` and ``pools``."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Generator, Iterator

from .._client import HttpDockerRunnerClient
from .._models import Job, JobEvent, JobEventsDropped, JobLog, JobMessage, JobResources, JobUpdate, PoolStats
from . import args as values
from .commands import Commands, add_command
from .exits import ERROR, TIMEOUT
from .output import ago, emit_json, emit_table, to_json

JOB_HEADERS = ("JOB ID", "STATUS", "IMAGE", "CREATED", "EXIT", "ERROR")
POOL_HEADERS = (
    "IMAGE",
    "MIN",
    "MAX",
    "SIZE",
    "IDLE",
    "IN USE",
    "CREATING",
    "CREATED",
    "DESTROYED",
    "UNHEALTHY",
    "TAKEN",
    "WAIT AVG",
)
NEWEST = 1 << 62  # a Last-Event-ID beyond any job's events: the runner resumes from the newest one
EVENTS_HELP = """\
Without -f: the events the runner holds for the job now, then stop. With -f: on until the job
ends (resuming after a dropped connection), then exit as the job did: 0 completed, its exit code
when it failed, 124 past its timeout, 1 otherwise. Output lines go to stdout or stderr as they were
written, JSON messages to stdout, status changes to stderr; --json: one object per event."""


def register(commands: Commands) -> None:
    add_command(
        commands, "jobs", _jobs, "list running and recent jobs", "Running jobs and the recent ended ones, newest first."
    )
    job = commands.add_parser("job", help="submit, show, follow or cancel a job", description="One job.")
    actions = job.add_subparsers(dest="job_action", required=True, metavar="ACTION")
    submit = add_command(
        actions,
        "submit",
        _submit,
        "start a job; prints its id",
        "Start a job: a fresh container of IMAGE gets INPUT (JSON) on its stdin as one line. Prints the "
        "job id; with -f, follows its events as job events -f does and exits as the job did.",
    )
    submit.add_argument("--input", required=True, metavar="JSON", help="the input: JSON text, @FILE, or @- for stdin")
    submit.add_argument("--command", metavar="CMD", help="a command line, run with /bin/sh -lc (default: the image's)")
    submit.add_argument("--env", "-e", action="append", metavar="KEY=VALUE", help="an environment variable")
    submit.add_argument("--label", action="append", metavar="KEY=VALUE", help="a label")
    submit.add_argument("--timeout", type=values.seconds, metavar="SECONDS", help="kill the job past this")
    submit.add_argument("--memory", help="a memory limit: bytes or a size such as 512m")
    submit.add_argument("--cpus", type=float, help="a CPU limit, such as 1.5")
    submit.add_argument("-f", "--follow", action="store_true", help="follow its events until it ends")
    submit.add_argument("image", metavar="IMAGE")
    show = add_command(actions, "show", _show, "show one job", "The job's status, exit code, error and counts.")
    show.add_argument("job_id", metavar="JOB_ID")
    events = add_command(actions, "events", _job_events, "print a job's events", EVENTS_HELP, raw=True)
    events.add_argument("-f", "--follow", action="store_true", help="on until the job ends")
    events.add_argument("job_id", metavar="JOB_ID")
    cancel = add_command(actions, "cancel", _cancel, "cancel a job", "Kill the job and remove its container.")
    cancel.add_argument("job_id", metavar="JOB_ID")
    add_command(
        commands, "pools", _pools, "show the pools of pre-warmed containers", "Per-pool figures, as GET /v1/pools."
    )


def job_rows(jobs: list[Job], now: float) -> list[list[str]]:
    """The rows of ``jobs`` (pure)."""
    return [
        [
            job.job_id,
            job.status,
            job.image,
            ago(job.created_at, now),
            _or_dash(job.exit_code),
            job.error.code if job.error else "-",
        ]
        for job in jobs
    ]


def pool_rows(pools: list[PoolStats]) -> list[list[str]]:
    """The rows of ``pools`` (pure)."""
    return [
        [
            pool.image,
            *(str(number) for number in (pool.min, pool.max, pool.size, pool.idle, pool.in_use, pool.creating)),
            *(str(number) for number in (pool.created, pool.destroyed, pool.health_failures, pool.acquisitions)),
            f"{pool.acquire_wait_ms_avg:.0f}ms",
        ]
        for pool in pools
    ]


def _or_dash(value: object) -> str:
    return "-" if value is None else str(value)


def _jobs(client: HttpDockerRunnerClient, args: argparse.Namespace) -> int:
    listed = client.jobs()
    if args.json:
        emit_json(listed)
    else:
        emit_table(JOB_HEADERS, job_rows(listed, time.time()))
    return 0


def _pools(client: HttpDockerRunnerClient, args: argparse.Namespace) -> int:
    listed = client.pools()
    if args.json:
        emit_json(listed)
    else:
        emit_table(POOL_HEADERS, pool_rows(listed))
    return 0


def _submit(client: HttpDockerRunnerClient, args: argparse.Namespace) -> int:
    resources = None if args.memory is None and args.cpus is None else JobResources(memory=args.memory, cpus=args.cpus)
    job = client.submit_job(
        args.image,
        values.json_value(args.input),
        command=args.command,
        env=values.key_values(args.env, "--env") or None,
        resources=resources,
        timeout_ms=values.milliseconds(args.timeout),
        labels=values.key_values(args.label, "--label") or None,
    )
    if args.json and not args.follow:
        emit_json(job)
    elif not args.json:
        print(job.job_id, flush=True)
    if not args.follow:
        return 0
    return _print_events(client.job_events(job.job_id, reconnect=True), args.json)


def _show(client: HttpDockerRunnerClient, args: argparse.Namespace) -> int:
    job = client.job(args.job_id)
    if args.json:
        emit_json(job)
    else:
        for key, value in to_json(job).items():
            print(f"{key:<14} {'-' if value is None or value == {} else value}")
    return 0


def _cancel(client: HttpDockerRunnerClient, args: argparse.Namespace) -> int:
    job = client.cancel_job(args.job_id)
    if args.json:
        emit_json(job)
    else:
        print(f"{job.job_id} {job.status}")
    return 0


def _job_events(client: HttpDockerRunnerClient, args: argparse.Namespace) -> int:
    if args.follow:
        return _print_events(client.job_events(args.job_id, reconnect=True), args.json)
    newest = _newest_event_id(client, args.job_id)
    _print_events(_until(client.job_events(args.job_id), newest), args.json)
    return 0


def _newest_event_id(client: HttpDockerRunnerClient, job_id: str) -> int:
    """The id of the job's newest event: a stream resumed from beyond its end starts with it."""
    events = client.job_events(job_id, last_event_id=NEWEST)
    try:
        for event in events:
            if not isinstance(event, JobEventsDropped) and event.id is not None:
                return event.id
        return 0
    finally:
        _close(events)


def _close(events: Iterator[JobEvent]) -> None:
    """End a stream left before its end: its connection is closed now, not when collected."""
    if isinstance(events, Generator):
        events.close()


def _until(events: Iterator[JobEvent], last_id: int) -> Iterator[JobEvent]:
    """The events up to the one with ``last_id`` (or the stream's end, if that comes first)."""
    try:
        for event in events:
            yield event
            if not isinstance(event, JobEventsDropped) and event.id is not None and event.id >= last_id:
                return
    finally:
        _close(events)


def _print_events(events: Iterator[JobEvent], as_json: bool) -> int:
    """Print each event; the exit code of the job's final update (0 without one)."""
    final: Job | None = None
    for event in events:
        if isinstance(event, JobUpdate) and event.job.ended:
            final = event.job
        if as_json:
            emit_json(event_json(event), line=True)
        else:
            _print_event(event)
    return 0 if final is None else job_exit_code(final)


def event_json(event: JobEvent) -> dict[str, object]:
    """A job event as its JSON line: the runner's ``type``, the event's id and fields (pure)."""
    if isinstance(event, JobMessage):
        return {"type": "message", "id": event.id, "message": to_json(event.message)}
    if isinstance(event, JobLog):
        return {"type": "log", "id": event.id, "stream": event.stream, "line": event.line}
    if isinstance(event, JobUpdate):
        return {"type": "job_update", "id": event.id, "job": to_json(event.job)}
    return {"type": "dropped", "dropped": event.dropped}


def _print_event(event: JobEvent) -> None:
    if isinstance(event, JobLog):
        print(event.line, file=sys.stderr if event.stream == "stderr" else sys.stdout, flush=True)
    elif isinstance(event, JobMessage):
        emit_json(event.message, line=True)
    elif isinstance(event, JobUpdate):
        job = event.job
        detail = f" (exit {job.exit_code})" if job.exit_code is not None else ""
        detail += f": {job.error.code}: {job.error.message}" if job.error else ""
        print(f"job {job.job_id} {job.status}{detail}", file=sys.stderr, flush=True)
    else:
        print(f"{event.dropped} earlier events are no longer held", file=sys.stderr, flush=True)


def job_exit_code(job: Job) -> int:
    """How a followed job exits the command (pure): 0 completed, its exit code when it failed, 124
    past its timeout, 1 for anything else (cancelled, could not start)."""
    if job.status == "completed":
        return 0
    if job.error is not None and job.error.code == "job_timeout":
        return TIMEOUT.code
    if job.status == "error" and job.exit_code:
        return job.exit_code
    return ERROR.code
