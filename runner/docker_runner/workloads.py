"""One-shot runs (``POST /v1/run``) and test runs (``/v1/test``): a container used once, from the
image's pool when it has one, a fresh one otherwise, and removed afterwards whatever happens."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import IO, Any

from . import oneshot
from .container_spec import ContainerOpts, build_create_body
from .engine import APIClient, Engine, remove_if_present
from .errors import ApiError
from .exec_run import Canceller
from .policy import CreateChecker
from .pool import Pool, Pooled, PoolManager, start_attached

log = logging.getLogger("docker_runner.workloads")

ONESHOT_LABEL = "dev.docker-runner.oneshot"
REMOVE_AFTER_SLACK_SECONDS = 600  # a crashed runner's one-shot containers are reaped this long after their timeout


@dataclass
class Workbench:
    """What one-shot runs need from the runtime."""

    engine: Engine
    checker: CreateChecker
    pools: PoolManager
    instance: str
    acquire_timeout_seconds: float
    live: set[str]  # one-shot containers in use, removed at shutdown if still there
    removals: set[asyncio.Task[None]]


def _fresh_body(bench: Workbench, image: str, timeout_ms: int) -> dict[str, Any]:
    ttl = (timeout_ms // 1000 if timeout_ms > 0 else 24 * 3600) + REMOVE_AFTER_SLACK_SECONDS
    opts = ContainerOpts(image=image, auto_remove=False, ttl_seconds=ttl)
    body = oneshot.bootstrap_config(build_create_body(opts, bench.instance))
    body["Labels"] = {**body["Labels"], ONESHOT_LABEL: "true"}
    return bench.checker.check(body)


@contextlib.asynccontextmanager
async def one_use_container(bench: Workbench, image: str, timeout_ms: int) -> AsyncIterator[tuple[Pooled, bool]]:
    """A started, attached container used once: (it, pooled?). Gone afterwards, in the background."""
    pool: Pool | None = bench.pools.get(image)
    if pool is not None:
        container = await pool.acquire(bench.acquire_timeout_seconds)
    else:
        body = _fresh_body(bench, image, timeout_ms)
        container = await bench.engine.run(lambda api: start_attached(api, body))
    bench.live.add(container.container_id)
    try:
        yield container, pool is not None
    finally:
        if pool is not None:
            pool.release(container)
        else:
            _remove_later(bench, container)
        bench.live.discard(container.container_id)


def _remove_later(bench: Workbench, container: Pooled) -> None:
    async def remove() -> None:
        container.attached.close()
        try:
            await bench.engine.run(lambda api: remove_if_present(api, container.container_id))
        except ApiError as error:
            log.warning("could not remove one-shot container %s: %s", container.container_id[:12], error.message)

    task = asyncio.ensure_future(remove())
    bench.removals.add(task)
    task.add_done_callback(bench.removals.discard)


async def dispatch(
    engine: Engine,
    container: Pooled,
    script: str,
    token: str,
    stdin: bytes | None,
    timeout_ms: int,
    max_output_bytes: int,
    on_client_gone: Callable[[Canceller], Any],
) -> oneshot.RunResult:
    """Run the script in the container; a client that leaves cancels it (the container goes anyway)."""
    canceller = Canceller()

    def work(_api: APIClient) -> oneshot.RunResult:
        try:
            return oneshot.run(container.attached, script, token, stdin, timeout_ms, max_output_bytes, canceller)
        finally:
            canceller.close()

    watcher = on_client_gone(canceller)
    try:
        return await engine.run_stream(work, on_cancel=canceller.cancel)
    finally:
        watcher.cancel()


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
            raise ApiError(409, "removal_failed", f"could not remove {len(paths)} path(s) under {workdir}")

    await engine.run(remove)


async def shutdown(bench: Workbench) -> None:
    """Remove what runs still hold (the runner is stopping), and wait for pending removals."""
    for container_id in list(bench.live):
        with contextlib.suppress(ApiError):
            await bench.engine.run(lambda api, cid=container_id: remove_if_present(api, cid))  # type: ignore[misc]
    deadline = time.monotonic() + 30
    while bench.removals and time.monotonic() < deadline:  # a run ending meanwhile adds its own
        await asyncio.wait(list(bench.removals), timeout=deadline - time.monotonic())
