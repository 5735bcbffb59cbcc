"""One-shot runs (``POST /v1/run``) and test runs (``/v1/test``): a container used once, from the
image's pool when it has one, a fresh one otherwise, and removed afterwards whatever happens."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from ..containers.spec import ONESHOT_LABEL, ContainerOpts, build_create_body
from ..engine.core import APIClient, Engine
from ..engine.sockets import Canceller
from ..errors import ApiError, Kind, engine_lost_during_run, shutting_down
from ..exec.cancel import run_cancellable
from ..exec.draining import Draining
from ..metrics import Metrics, RunKind, RunOutcome
from ..policy.checker import CreateChecker
from ..protocol.patch_tar import PatchRefused
from . import bootstrap
from .pool import Pool, Pooled, PoolManager, start_attached

log = logging.getLogger("docker_runner.workloads")

SHUTDOWN_WAIT_SECONDS = 30
REMOVE_AFTER_SLACK_SECONDS = 600  # a crashed runner's one-shot containers are reaped this long after their timeout


@dataclass
class OneUseRuns:
    """What one-shot runs need from the runtime."""

    engine: Engine
    checker: CreateChecker
    pools: PoolManager
    instance: str
    acquire_timeout_seconds: float
    live: set[str]  # one-shot containers in use, removed at shutdown if still there
    removing: set[asyncio.Task[None]]  # removals of used containers, under way
    creations: set[asyncio.Task[Pooled | None]] = field(default_factory=set)  # fresh containers on their way
    closing: bool = False


def fresh_body(runs: OneUseRuns, image: str, timeout_ms: int) -> dict[str, Any]:
    """The create body of a fresh one-use container of ``image``: a bootstrap, checked by the policy."""
    ttl = (timeout_ms // 1000 if timeout_ms > 0 else 24 * 3600) + REMOVE_AFTER_SLACK_SECONDS
    opts = ContainerOpts(image=image, auto_remove=False, ttl_seconds=ttl)
    body = bootstrap.bootstrap_config(build_create_body(opts, runs.instance))
    body["Labels"] = {**body["Labels"], ONESHOT_LABEL: "true"}
    return runs.checker.check(body)


@dataclass(frozen=True)
class Given:
    """A container made for the run elsewhere (Swarm placed it), attached here, and how it goes."""

    container: Pooled
    release: Callable[[], Awaitable[None]]


@contextlib.asynccontextmanager
async def one_use_container(
    runs: OneUseRuns, image: str, timeout_ms: int, given: Given | None = None
) -> AsyncIterator[tuple[Pooled, bool]]:
    """A started, attached container used once: (it, pooled?). Gone afterwards, in the background."""
    if given is not None:
        async with _given(runs, given) as container:
            yield container, False
        return
    pool: Pool | None = runs.pools.get(image)
    if pool is not None:
        container = await pool.acquire(runs.acquire_timeout_seconds)
    else:
        container = await _fresh_container(runs, image, timeout_ms)
    runs.live.add(container.container_id)
    try:
        yield container, pool is not None
    finally:
        if pool is not None:
            pool.release(container)
        else:
            _remove_later(runs, container)
        runs.live.discard(container.container_id)


@contextlib.asynccontextmanager
async def _given(runs: OneUseRuns, given: Given) -> AsyncIterator[Pooled]:
    runs.live.add(given.container.container_id)
    try:
        yield given.container
    finally:
        given.container.attached.close()
        task = asyncio.ensure_future(given.release())
        runs.removing.add(task)
        task.add_done_callback(runs.removing.discard)
        runs.live.discard(given.container.container_id)


class _Creation:
    """A fresh container created apart from its request, which may go away meanwhile."""

    def __init__(self, runs: OneUseRuns, body: dict[str, Any]) -> None:
        self._runs = runs
        self._body = body
        self.abandoned = False  # the request was cancelled (client gone, shutdown) mid-creation

    async def run(self) -> Pooled | None:
        """The container, or None when it was removed at once (abandoned, or shutdown began)."""
        engine = self._runs.engine
        container = await engine.run(lambda api: start_attached(api, self._body, engine.removals.later, "run"))
        if self.abandoned or self._runs.closing:
            await _remove(self._runs, container)  # within this task, which shutdown waits for
            return None
        return container


async def _fresh_container(runs: OneUseRuns, image: str, timeout_ms: int) -> Pooled:
    """Created and started in a task of its own: a request cancelled meanwhile leaves the
    container to be removed once it exists, instead of forgetting it."""
    creation = _Creation(runs, fresh_body(runs, image, timeout_ms))
    task = asyncio.ensure_future(creation.run())
    runs.creations.add(task)
    task.add_done_callback(runs.creations.discard)
    try:
        container = await asyncio.shield(task)
    except asyncio.CancelledError:
        if not task.done():
            creation.abandoned = True
            task.add_done_callback(_retrieve_failure)
        elif not task.cancelled() and task.exception() is None and (made := task.result()) is not None:
            _remove_later(runs, made)  # made just before the cancel reached us
        raise
    if container is None:
        raise shutting_down()
    return container


def _retrieve_failure(task: asyncio.Task[Pooled | None]) -> None:
    if not task.cancelled():
        task.exception()  # nobody awaits an abandoned creation: its failure has no one to go to


async def _remove(runs: OneUseRuns, container: Pooled) -> None:
    container.attached.close()
    await runs.engine.removals.now(container.container_id, "one-shot container")


def _remove_later(runs: OneUseRuns, container: Pooled) -> None:
    task = asyncio.ensure_future(_remove(runs, container))
    runs.removing.add(task)
    task.add_done_callback(runs.removing.discard)


@dataclass(frozen=True)
class OneUseRun:
    """A one-shot or test run as its handler asks for it."""

    kind: RunKind
    image: str
    script: str
    token: str
    stdin: bytes | None
    timeout_ms: int
    max_output_bytes: int
    prepare: Callable[[str], Awaitable[None]]  # given the container id, before the script: files in, paths out
    given: Given | None = None  # cluster mode: the container Swarm placed for this run


def run_outcome(result: bootstrap.RunResult) -> RunOutcome:
    """How a run that got its container ended, as the metrics name it (pure)."""
    if result.cancelled:
        return "cancelled"
    if result.timed_out:
        return "timeout"
    return "exited" if result.exit_code == 0 else "failed"


async def run_one_use(
    runs: OneUseRuns,
    metrics: Metrics,
    run: OneUseRun,
    on_client_gone: Callable[[Canceller], asyncio.Future[None]],
    draining: Draining,
) -> tuple[bootstrap.RunResult, bool]:
    """Run the script in a container used once: (the result, pooled?). Counted here, once, however
    it ends. A client that leaves cancels it (the container goes anyway), and so does a shutdown
    whose grace is running out (503 ``shutting_down``)."""
    started = time.monotonic()
    outcome: RunOutcome = "error"
    pooled = False  # served by a pool's container: not when its pool had none to give (an error)
    try:
        async with one_use_container(runs, run.image, run.timeout_ms, run.given) as (container, pooled):
            await run.prepare(container.container_id)
            result = await _dispatch(runs.engine, container, run, on_client_gone, draining)
        outcome = run_outcome(result)
    except asyncio.CancelledError:
        outcome = "cancelled"
        raise
    finally:
        metrics.count_run(run.kind, outcome, pooled, time.monotonic() - started)
    if result.cancelled and draining.cut_begun:
        raise shutting_down({"stdout": result.stdout, "stderr": result.stderr})
    return result, pooled


async def _dispatch(
    engine: Engine,
    container: Pooled,
    run: OneUseRun,
    on_client_gone: Callable[[Canceller], asyncio.Future[None]],
    draining: Draining,
) -> bootstrap.RunResult:
    def work(_api: APIClient, canceller: Canceller) -> bootstrap.RunResult:
        return bootstrap.run(
            container.attached,
            run.script,
            run.token,
            run.stdin,
            run.timeout_ms,
            run.max_output_bytes,
            canceller,
            end_input=run.given is None,
        )

    result = await run_cancellable(engine, work, on_client_gone, draining)
    if result.exit_code is None and not (result.timed_out or result.cancelled):
        await _check_ended_by_itself(engine, container.container_id, result)
    return result


async def _check_ended_by_itself(engine: Engine, container_id: str, result: bootstrap.RunResult) -> None:
    """A run whose stream ended without its exit marker: the container died (a 200 with a null exit
    code), or the engine went away under it (503, retryable, with the output so far)."""
    try:
        state = await engine.run(lambda api: api.inspect_container(container_id).get("State") or {})
    except ApiError as error:
        if error.code == "docker_unavailable":
            raise engine_lost_during_run(result.stdout, result.stderr) from error
        if error.kind is Kind.NOT_FOUND:
            return  # removed behind the runner's back: it is gone, as a dead one is
        raise
    if state.get("Running"):  # the stream broke while the container runs on: not the command's end
        raise engine_lost_during_run(result.stdout, result.stderr)


@contextlib.contextmanager
def patch_refusals() -> Iterator[None]:
    """A patch, file set or path list the checks refused is the request's fault: 400 naming it."""
    try:
        yield
    except PatchRefused as refused:
        raise ApiError(Kind.INVALID, "validation_error", refused.message, details=refused.details) from None


async def put_tar(engine: Engine, container_id: str, tar: IO[bytes]) -> None:
    """Extract a tar whose paths are rooted at ``/`` (see patch_tar)."""
    await engine.run_stream(lambda api: api.put_archive(container_id, "/", tar))


async def remove_paths(engine: Engine, container_id: str, workdir: str, paths: list[str]) -> None:
    """Delete files and directories of the work directory before a patch lands."""
    command = ["/bin/sh", "-c", 'cd "$0" && rm -rf -- "$@"', workdir, *paths]

    def remove(api: APIClient) -> None:
        created = api.exec_create(container_id, command, user="0")
        api.exec_start(created["Id"])
        if api.exec_inspect(created["Id"]).get("ExitCode") != 0:
            raise ApiError(Kind.CONFLICT, "removal_failed", f"could not remove {len(paths)} path(s) under {workdir}")

    await engine.run(remove)


async def shutdown(runs: OneUseRuns) -> None:
    """Remove what runs still hold (the runner is stopping), including containers still being
    created, and wait for pending removals."""
    runs.closing = True
    deadline = time.monotonic() + SHUTDOWN_WAIT_SECONDS
    await _wait_for(runs.creations, deadline)  # each one ends up live, or removed by itself
    for container_id in list(runs.live):
        await runs.engine.removals.now(container_id, "one-shot container")
    await _wait_for(runs.removing, deadline)  # a run ending meanwhile adds its own


async def _wait_for(tasks: set[asyncio.Task[Any]], deadline: float) -> None:
    while tasks and time.monotonic() < deadline:
        await asyncio.wait(list(tasks), timeout=deadline - time.monotonic())
