"""Jobs: a container fed one JSON line on stdin, whose output lines come back as events.

::

    POST   -> checked against the policy, created with stdin attached     status starting
           -> started; the input written, then EOF; output read to EOF     status running
           -> exit code and OOM flag read, the container removed           completed | error | cancelled

A job over its timeout is killed (``error``, code ``job_timeout``); an OOM-killed one ends in
``error`` with code ``job_oom``; a cancel kills it (``cancelled``). Every state change is a
``job_update`` event, the last one after the container is gone. Events live in a bounded
per-job buffer that every subscriber reads at its own pace (``job_stream.frames``); ended jobs are
remembered, events included, up to ``DOCKER_RUNNER_JOB_HISTORY`` of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio
import msgspec

from ..containers.spec import INSTANCE_LABEL
from ..engine.core import APIClient, Engine, wait_exit
from ..engine.pump import Pump
from ..engine.removals import remove_if_present
from ..engine.sockets import Attached
from ..engine.streams import BlockingStream
from ..errors import ApiError, Kind, internal_error, shutting_down
from ..metrics import Metrics
from ..policy.checker import CreateChecker
from ..settings import Settings
from . import spec
from .attach import create_attached
from .events import EventBuffer, OutputLines, classify, encode

log = logging.getLogger("docker_runner.jobs")

T = TypeVar("T")

ENDED = ("completed", "error", "cancelled")
SETTLE_WAIT_SECONDS = 30


class JobError(msgspec.Struct):
    code: str
    message: str


class JobAnswer(msgspec.Struct, rename="camel", omit_defaults=True):
    """A job as the API shows it; times are Unix epoch milliseconds."""

    job_id: str
    status: str
    image: str
    container_id: str
    labels: dict[str, str]
    timeout_ms: int
    exit_code: int | None
    error: JobError | None
    created_at: int
    started_at: int | None
    ended_at: int | None
    messages: int  # stdout lines forwarded as messages
    logs: int  # other lines
    events_dropped: int  # events pushed out of the buffer before every subscriber could read them
    lines_dropped: int  # lines longer than DOCKER_RUNNER_JOB_MAX_LINE_BYTES
    node: str | None = None  # cluster mode: the Swarm node the job runs on


def not_found_job(job_id: str) -> ApiError:
    return ApiError(Kind.NOT_FOUND, "no_such_job", f"No such job: {job_id}")


def _now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True)
class PlacedJob:
    """Cluster mode: a job's container Swarm placed on this node, running already (its command
    behind ``spec.LINE_FEEDER``), attached here; ``release`` removes its service, and so it."""

    job_id: str
    attached: Attached
    node: str
    release: Callable[[], Awaitable[None]]


class Job:
    def __init__(
        self,
        job_id: str,
        request: spec.JobRequest,
        container_id: str,
        timeout_ms: int,
        buffer: EventBuffer,
        placed: PlacedJob | None = None,
    ):
        self.job_id = job_id
        self.placed = placed
        self.image = request.image
        self.labels = dict(request.labels or {})
        self.container_id = container_id
        self.timeout_ms = timeout_ms
        self.events = buffer
        self.status = "starting"
        self.exit_code: int | None = None
        self.error: JobError | None = None
        self.created_at = _now_ms()
        self.created_monotonic = time.monotonic()  # what its duration is measured from
        self.started_at: int | None = None
        self.ended_at: int | None = None
        self.messages = 0
        self.logs = 0
        self.lines_dropped = 0
        self.cancel_requested = False
        self.settling = False  # past the point where a cancel can change how it ends
        self.scope: anyio.CancelScope | None = None
        self.done = asyncio.Event()
        self._changed = asyncio.Event()

    @property
    def ended(self) -> bool:
        return self.status in ENDED

    def answer(self) -> JobAnswer:
        return JobAnswer(
            job_id=self.job_id,
            status=self.status,
            image=self.image,
            container_id=self.container_id,
            labels=self.labels,
            timeout_ms=self.timeout_ms,
            exit_code=self.exit_code,
            error=self.error,
            created_at=self.created_at,
            started_at=self.started_at,
            ended_at=self.ended_at,
            messages=self.messages,
            logs=self.logs,
            events_dropped=self.events.dropped,
            lines_dropped=self.lines_dropped,
            node=self.placed.node if self.placed else None,
        )

    def _emit(self, data: str) -> None:
        self.events.append(data)
        self._changed.set()
        self._changed = asyncio.Event()

    def record(self, stream: str, line: bytes) -> None:
        kind, data = classify(stream, line)
        if kind == "message":
            self.messages += 1
        else:
            self.logs += 1
        self._emit(data)

    def update(self, status: str, exit_code: int | None = None, error: JobError | None = None) -> None:
        self.status = status
        if status == "running":
            self.started_at = _now_ms()
        if status in ENDED:
            self.exit_code, self.error, self.ended_at = exit_code, error, _now_ms()
        self._emit(encode({"type": "job_update", **msgspec.to_builtins(self.answer())}))
        if status in ENDED:
            self.done.set()

    async def wait_beyond(self, seq: int, seconds: float) -> bool:
        """Wait until there is an event after ``seq`` (or the job has ended); False after ``seconds``."""
        if self.events.last_seq > seq or self.ended:
            return True
        changed = self._changed
        with anyio.move_on_after(seconds):
            await changed.wait()
            return True
        return False


@dataclass
class _Outcome:
    exited: bool = False  # the container ended by itself and its exit code is known
    exit_code: int | None = None
    timed_out: bool = False
    failure: ApiError | None = None


def _stopped_exit_code(state: dict[str, Any] | None) -> int | None:
    """The exit code of a container that ran and stopped; None otherwise (a never started one says 0)."""
    if state is None or state.get("Status") == "created" or state.get("Running"):
        return None
    code = state.get("ExitCode")
    return code if isinstance(code, int) else None


def verdict(job: Job, outcome: _Outcome, state: dict[str, Any] | None) -> tuple[str, int | None, JobError | None]:
    """(final status, exit code, error) from how the run went and the container's final state (pure)."""
    exit_code = _stopped_exit_code(state)
    if exit_code is None:
        exit_code = outcome.exit_code
    if job.cancel_requested:
        return "cancelled", exit_code, None
    if outcome.failure is not None:
        return "error", exit_code, JobError(outcome.failure.code, outcome.failure.message)
    if outcome.timed_out:
        return "error", exit_code, JobError("job_timeout", f"Job timed out after {job.timeout_ms}ms")
    if state is not None and state.get("OOMKilled"):
        return "error", exit_code, JobError("job_oom", "the job ran out of memory and was killed")
    if exit_code is None:
        return "error", None, JobError("job_lost", "the job's container went away before its exit code was read")
    if exit_code == 0:
        return "completed", 0, None
    return "error", exit_code, JobError("job_failed", f"the job exited with code {exit_code}")


def _final_state(api: APIClient, container_id: str) -> dict[str, Any]:
    with contextlib.suppress(Exception):  # a wait that fails still leaves inspect to say what it can
        api.wait(container_id, timeout=SETTLE_WAIT_SECONDS)
    return dict(api.inspect_container(container_id).get("State") or {})


class JobManager:
    """Every job of the runner: running ones, and the last ended ones with their events."""

    def __init__(self, engine: Engine, checker: CreateChecker, settings: Settings, metrics: Metrics) -> None:
        self._engine = engine
        self._checker = checker
        self._settings = settings
        self._metrics = metrics
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._tasks: set[asyncio.Future[Any]] = set()  # creations and runs: what shutdown waits for
        self._reserved = 0
        self._closed = False
        metrics.jobs_active.set_function(lambda: len(self.active()))

    def active(self) -> list[Job]:
        return [job for job in self._jobs.values() if not job.ended]

    def knows(self, job_id: str) -> bool:
        return job_id in self._jobs

    def get(self, job_id: str) -> Job:
        job = self._jobs.get(job_id)
        if job is None:
            raise not_found_job(job_id)
        return job

    def recent(self) -> list[Job]:
        """Newest first."""
        return list(reversed(self._jobs.values()))

    def body_for(self, request: spec.JobRequest) -> tuple[str, dict[str, Any]]:
        """A new job's id and its container's create body, checked by the policy."""
        job_id = uuid.uuid4().hex
        return job_id, self._checker.check(spec.build_job_body(request, job_id, self._settings))

    async def submit(self, request: spec.JobRequest, placed: PlacedJob | None = None) -> Job:
        """Create the job's container (policy-checked) with stdin attached, then start it in the
        background; or follow the one Swarm ``placed`` here (the caller releases it if refused).

        The creation is a task of its own, which shutdown waits for and which goes on if the caller
        leaves: a container once created always gets a job (or a removal) that ends it."""
        if self._closed:
            raise shutting_down()
        limit = self._settings.job_max_active
        if len(self.active()) + self._reserved >= limit:
            raise ApiError(Kind.UNAVAILABLE, "too_many_jobs", f"{limit} jobs are running already", retryable=True)
        payload = spec.input_line(request.input)
        if placed is not None:
            if placed.job_id in self._jobs:
                raise ApiError(Kind.CONFLICT, "job_exists", f"Job {placed.job_id} is followed already")
            return self._begin(request, placed.job_id, placed.attached, payload, placed)
        job_id, body = self.body_for(request)
        self._reserved += 1
        creation = self._track(self._create(request, job_id, body, payload))
        return await asyncio.shield(creation)

    async def _create(self, request: spec.JobRequest, job_id: str, body: dict[str, Any], payload: bytes) -> Job:
        try:
            orphaned = self._engine.removals.later
            container_id, attached = await self._engine.run(lambda api: create_attached(api, body, orphaned))
        finally:
            self._reserved -= 1
        if self._closed:  # shutdown began during the create and cancels no job it has not seen
            attached.close()
            await self._remove_container(job_id, container_id)
            raise shutting_down()
        return self._begin(request, job_id, attached, payload)

    def _begin(
        self,
        request: spec.JobRequest,
        job_id: str,
        attached: Attached,
        payload: bytes,
        placed: PlacedJob | None = None,
    ) -> Job:
        buffer = EventBuffer(self._settings.job_buffer_events, self._settings.job_buffer_bytes)
        timeout = spec.timeout_ms(request, self._settings)
        job = Job(job_id, request, attached.container_id, timeout, buffer, placed)
        self._jobs[job_id] = job
        job.update("starting")
        self._track(self._run(job, attached, payload))
        self._forget_old()
        return job

    def _track(self, work: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._untrack)
        return task

    def _untrack(self, task: asyncio.Future[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled():
            task.exception()  # a creation's error went to its caller, if still there: nobody else awaits it

    async def cancel(self, job_id: str) -> Job:
        """Kill and remove the job's container; answers once the job has ended (an ended job as it is)."""
        job = self.get(job_id)
        self._cancel(job)
        await job.done.wait()
        return job

    def _cancel(self, job: Job) -> None:
        if job.ended or job.settling:
            return
        job.cancel_requested = True
        if job.scope is not None:
            job.scope.cancel()

    async def _run(self, job: Job, attached: Attached, payload: bytes) -> None:
        outcome = _Outcome()
        try:
            with anyio.CancelScope() as job.scope:
                if job.cancel_requested:
                    return  # cancelled before its task ran: never started, only removed
                if job.placed is None:  # a placed one runs already, waiting for its line
                    await self._engine.run(lambda api: api.start(job.container_id))
                if job.scope.cancel_called:
                    return
                job.update("running")
                bound = job.timeout_ms / 1000 if job.timeout_ms > 0 else math.inf
                with anyio.move_on_after(bound) as timer:
                    await self._read(job, attached, payload)
                    outcome.exit_code = await self._engine.run_stream(
                        lambda api: wait_exit(api, job.container_id), on_cancel=lambda: None
                    )
                    outcome.exited = True
                outcome.timed_out = timer.cancelled_caught
        except ApiError as error:
            outcome.failure = error
        except Exception:
            log.exception("job %s failed", job.job_id)
            outcome.failure = internal_error("the runner failed while running the job")
        finally:
            job.settling = True
            with anyio.CancelScope(shield=True):
                await self._settle(job, attached, outcome)

    async def _read(self, job: Job, attached: Attached, payload: bytes) -> None:
        """Write the input, then relay the output as events until the container closes it."""
        # a placed job's stdin never ends (Swarm): its line feeder reads one line
        pump = Pump(attached.socket, payload, end_input=job.placed is None)
        stream = BlockingStream(iter(pump), attached.shutdown, self._engine.stream_limiter)
        lines = OutputLines(self._settings.job_max_line_bytes)
        try:
            while (chunk := await stream.receive()) is not None:
                _relay(job, lines, lines.feed(chunk))
        finally:
            # after a timeout or a cancel too: a last line without newline was still printed
            _relay(job, lines, lines.flush())
            with anyio.CancelScope(shield=True):
                await stream.aclose()
        if stream.error is not None:
            log.warning("job %s: reading its output failed: %s", job.job_id, stream.error)

    async def _settle(self, job: Job, attached: Attached, outcome: _Outcome) -> None:
        """Kill what still runs, read the final state, remove the container, then record the end:
        whatever fails on the way, the end is recorded (or the job would stay running for good)."""
        state: dict[str, Any] | None = None
        try:
            attached.close()
            if not outcome.exited:
                await self._kill(job)
            state = await self._read_final_state(job)
            await self._remove_container(job.job_id, job.container_id)  # a placed one's too: gone now
            if job.placed is not None:
                await self._release(job.placed)
        finally:
            status, exit_code, job_error = verdict(job, outcome, state)
            job.update(status, exit_code, job_error)
            self._metrics.count_job(status, time.monotonic() - job.created_monotonic)
            self._forget_old()

    async def _kill(self, job: Job) -> None:
        container_id = job.container_id
        try:
            await self._engine.run(lambda api: api.kill(container_id))
        except ApiError:
            pass  # not running (any more), or gone
        except Exception as error:
            log.warning("job %s: could not kill container %s: %r", job.job_id, container_id[:12], error)

    async def _read_final_state(self, job: Job) -> dict[str, Any] | None:
        container_id = job.container_id
        try:
            return await self._engine.run(lambda api: _final_state(api, container_id))
        except Exception as error:
            log.warning("job %s: could not read its final state: %r", job.job_id, error)
            return None

    async def _remove_container(self, job_id: str, container_id: str) -> None:
        """Now, or queued until the engine can (the start-up sweep is the net for a crash)."""
        await self._engine.removals.now(container_id, f"container of job {job_id}")

    async def _release(self, placed: PlacedJob) -> None:
        try:
            await placed.release()
        except Exception as error:  # a manager's tidy removes an ended job's service in the end
            log.warning("job %s: could not remove its service: %r", placed.job_id, error)

    def _forget_old(self) -> None:
        ended = [job_id for job_id, job in self._jobs.items() if job.ended]
        for job_id in ended[: max(0, len(ended) - self._settings.job_history)]:
            del self._jobs[job_id]

    async def start(self) -> None:
        """Remove the job containers an earlier process of this runner left behind (nobody follows them)."""
        filters = {"label": [spec.JOB_LABEL, f"{INSTANCE_LABEL}={self._settings.instance}"]}
        try:
            leftovers = await self._engine.run(lambda api: api.containers(all=True, quiet=True, filters=filters))
            for item in leftovers:
                await self._engine.run(lambda api, cid=str(item["Id"]): remove_if_present(api, cid))  # type: ignore[misc]
            if leftovers:
                log.info("removed %d job containers left by an earlier process", len(leftovers))
        except ApiError as error:
            log.warning("could not sweep old job containers: %s", error.message)

    async def shutdown(self) -> None:
        """Cancel every running job (their containers are removed) and wait for them."""
        self._closed = True
        for job in self.active():
            self._cancel(job)
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=30)


def _relay(job: Job, lines: OutputLines, found: list[tuple[str, bytes]]) -> None:
    for stream_name, line in found:
        job.record(stream_name, line)
    job.lines_dropped = lines.overlong
