"""Pools of pre-warmed bootstrap containers, one pool per configured image.

Each pool keeps ``min`` containers started, attached and idle, never more than ``max`` in all.
A run takes an idle one (or waits, up to a deadline, then 503 ``pool_exhausted``); a used
container is never handed out again: it is destroyed in the background and replaced. A
maintenance round replaces the unhealthy (health command fails, or the container died) and the
over-age, lets idle extras beyond ``min`` go after ``idleTtlMs``, and tops the pool up to ``min``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ..containers.spec import INSTANCE_LABEL, ONESHOT_LABEL, build_create_body
from ..engine.core import APIClient, Engine
from ..engine.removals import create_own, remove_if_present, remove_or_queue
from ..engine.sockets import Attached
from ..errors import ApiError, Kind
from ..metrics import Metrics
from ..policy.checker import CreateChecker
from . import bootstrap
from .pool_config import PoolConfig, PoolError

log = logging.getLogger("docker_runner.pool")

POOL_LABEL = "dev.docker-runner.pool"
SWEPT_AT_START = (POOL_LABEL, ONESHOT_LABEL)  # only the process that made them can use them
CLOSE_WAIT_SECONDS = 30


def pool_exhausted(image: str, waited_ms: int) -> ApiError:
    return ApiError(
        Kind.UNAVAILABLE,
        "pool_exhausted",
        f"No container of the {image} pool became free within {waited_ms} ms",
        retryable=True,
    )


@dataclass
class Pooled:
    container_id: str
    attached: Attached
    created_at: float = field(default_factory=time.monotonic)
    idle_since: float = field(default_factory=time.monotonic)


@dataclass
class PoolCounters:
    created: int = 0
    destroyed: int = 0
    health_failures: int = 0
    acquisitions: int = 0
    acquire_wait_ms_total: float = 0.0


class Pool:
    def __init__(
        self, config: PoolConfig, engine: Engine, checker: CreateChecker, instance: str, metrics: Metrics
    ) -> None:
        self.config = config
        self._engine = engine
        self._checker = checker
        self._instance = instance
        self._metrics = metrics
        self._idle: deque[Pooled] = deque()
        self._live: dict[str, Pooled] = {}  # every container of the pool, whatever it is doing
        self._in_use = 0
        self._creating = 0
        self._retiring = 0  # used or replaced, still counted until the engine has removed them
        self._failure: ApiError | None = None  # the last creation failed, and none succeeded since
        self._changed = asyncio.Condition()
        self._tasks: set[asyncio.Task[None]] = set()
        self.counters = PoolCounters()
        self._closed = False
        for counter in (metrics.pool_created, metrics.pool_destroyed, metrics.pool_health_failures):
            counter.labels(pool=config.image)  # a series at 0 from the start, so rates show no gap
        metrics.pool_acquisitions.labels(pool=config.image)
        metrics.pool_acquire_seconds.labels(pool=config.image)

    @property
    def size(self) -> int:
        """Every container of the pool the engine may hold: never more than ``max``."""
        return len(self._idle) + self._in_use + self._creating + self._retiring

    def stats(self) -> dict[str, Any]:
        acquisitions = self.counters.acquisitions
        return {
            "image": self.config.image,
            "min": self.config.min,
            "max": self.config.max,
            "size": self.size,
            "idle": len(self._idle),
            "inUse": self._in_use,
            "creating": self._creating,
            "created": self.counters.created,
            "destroyed": self.counters.destroyed,
            "healthFailures": self.counters.health_failures,
            "acquisitions": acquisitions,
            "acquireWaitMsAvg": round(self.counters.acquire_wait_ms_total / acquisitions, 1) if acquisitions else 0.0,
        }

    def _body(self) -> dict[str, Any]:
        body = bootstrap.bootstrap_config(build_create_body(self.config.opts(), self._instance))
        body["Labels"] = {**body["Labels"], POOL_LABEL: self.config.image}
        return self._checker.check(body)

    def check_policy(self) -> None:
        """The policy is known at start: a pool it denies stops the start instead of failing every run."""
        try:
            self._body()
        except ApiError as error:
            raise PoolError(f"DOCKER_RUNNER_POOLS: pool {self.config.image}: {error.message}") from None

    def _spawn(self, work: Callable[[], Any]) -> None:
        task = asyncio.ensure_future(work())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _start_creating(self) -> None:
        """One more warm container, counted as creating from now (not from when its task first
        runs: a take in between would start a second one) until it is idle."""
        self._creating += 1
        self._spawn(self._create)

    async def _create(self) -> None:
        try:
            pooled = await self._engine.run(
                lambda api: start_attached(api, self._body(), self._engine.removals.later, "pool")
            )
        except ApiError as error:
            await self._cool_down(error)
            return
        except BaseException:
            self._creating -= 1
            raise
        self._failure = None
        self.counters.created += 1
        self._metrics.pool_created.labels(pool=self.config.image).inc()
        self._live[pooled.container_id] = pooled
        async with self._changed:
            self._creating -= 1  # and idle in the same step: never counted out of size meanwhile
            if not self._closed:
                self._idle.append(pooled)
                self._changed.notify_all()
                return
        await self._destroy(pooled)  # born after shutdown began

    async def _cool_down(self, error: ApiError) -> None:
        """A creation failed: waiting runs get the failure now, not an exhaustion later; and the
        next attempt waits a second (an engine failure, a missing image: do not spin)."""
        log.warning("pool %s: could not start a container: %s", self.config.image, error.message)
        try:
            async with self._changed:
                self._failure = error
                self._changed.notify_all()
            await asyncio.sleep(1)
        finally:
            self._creating -= 1

    def top_up(self) -> None:
        """Start creating containers until ``min`` are idle or coming, within ``max``."""
        if self._closed:
            return
        missing = self.config.min - len(self._idle) - self._creating
        room = self.config.max - self.size
        for _ in range(max(0, min(missing, room))):
            self._start_creating()

    async def _destroy(self, pooled: Pooled) -> None:
        if self._live.pop(pooled.container_id, None) is None:
            return  # already on its way out
        pooled.attached.close()
        await self._engine.removals.now(pooled.container_id, f"container of the {self.config.image} pool")
        self.counters.destroyed += 1
        self._metrics.pool_destroyed.labels(pool=self.config.image).inc()

    async def acquire(self, timeout_seconds: float) -> Pooled:
        """An idle, running container never used before, or 503 pool_exhausted after ``timeout_seconds``.

        One that died since its last health check (killed behind the pool's back) is replaced, not handed out.
        """
        started = time.monotonic()
        while True:
            pooled = await self._take(started, timeout_seconds)
            if await self._alive(pooled):
                break
            self._count_health_failure()
            self.release(pooled)
        waited = time.monotonic() - started
        self.counters.acquisitions += 1
        self.counters.acquire_wait_ms_total += waited * 1000
        self._metrics.pool_acquisitions.labels(pool=self.config.image).inc()
        self._metrics.pool_acquire_seconds.labels(pool=self.config.image).observe(waited)
        self.top_up()
        return pooled

    async def _alive(self, pooled: Pooled) -> bool:
        try:
            return await self._engine.run(lambda api: _running(api, pooled.container_id))
        except ApiError:
            return False  # gone, or the engine refused: either way not to be trusted with a run

    async def _take(self, started: float, timeout_seconds: float) -> Pooled:
        async with self._changed:
            while not self._idle:
                if self.size < self.config.max and self._creating == 0:
                    self._start_creating()  # on demand, within max
                if self._failure is not None and not self._closed:
                    raise self._creation_failure(self._failure)
                remaining = timeout_seconds - (time.monotonic() - started)
                if remaining <= 0 or self._closed:
                    raise pool_exhausted(self.config.image, int(timeout_seconds * 1000))
                try:
                    await asyncio.wait_for(self._changed.wait(), remaining)
                except TimeoutError:
                    continue
            self._in_use += 1
            return self._idle.popleft()

    def _creation_failure(self, error: ApiError) -> ApiError:
        """Why the pool has nothing to hand out (a retry is on its way meanwhile)."""
        message = f"The {self.config.image} pool cannot create containers: {error.message}"
        return error.with_message(message)

    def _count_health_failure(self) -> None:
        self.counters.health_failures += 1
        self._metrics.pool_health_failures.labels(pool=self.config.image).inc()

    def release(self, pooled: Pooled) -> None:
        """A used container: destroyed in the background, and replaced."""
        self._in_use -= 1
        self._retire(pooled)

    def _retire(self, pooled: Pooled) -> None:
        """Destroy in the background; counted in ``size`` until it is gone, so the replacement
        never takes the pool past ``max``."""
        self._retiring += 1
        self._spawn(lambda: self._after_retiring(pooled))

    async def _after_retiring(self, pooled: Pooled) -> None:
        try:
            await self._destroy(pooled)
        finally:
            self._retiring -= 1
        async with self._changed:
            self._changed.notify_all()  # room under max for a waiting acquire
        self.top_up()

    async def maintain(self) -> None:
        """One round: check the idle containers, replace what failed or aged, top up to min.

        The containers stay idle while they are checked, so a run arriving meanwhile is not kept
        waiting; one taken during its check is simply not replaced.
        """
        now = time.monotonic()
        candidates = list(self._idle)
        reasons: list[str | None] = []
        kept = 0
        for pooled in candidates:
            reason = self._expired(pooled, now, kept)
            kept += reason is None
            reasons.append(reason)
        checks = [self._health(pooled) for pooled, reason in zip(candidates, reasons, strict=True) if reason is None]
        health = iter(await asyncio.gather(*checks))
        reasons = [reason if reason is not None else next(health) for reason in reasons]
        async with self._changed:
            for pooled, reason in zip(candidates, reasons, strict=True):
                if reason is None or pooled not in self._idle:
                    continue
                self._idle.remove(pooled)
                log.info("pool %s: replacing %s (%s)", self.config.image, pooled.container_id[:12], reason)
                self._retire(pooled)
        self.top_up()

    def _expired(self, pooled: Pooled, now: float, kept: int) -> str | None:
        if now - pooled.created_at > self.config.max_age_ms / 1000:
            return "over age"
        if kept >= self.config.min and now - pooled.idle_since > self.config.idle_ttl_ms / 1000:
            return "idle past its TTL"
        return None

    async def _health(self, pooled: Pooled) -> str | None:
        try:
            healthy = await self._engine.run(lambda api: _healthy(api, pooled.container_id, self.config.health_cmd))
        except ApiError:
            healthy = False  # gone, or the engine refused: either way it cannot be trusted with a run
        if healthy:
            return None
        self._count_health_failure()
        return "unhealthy"

    async def close(self) -> None:
        """Remove every container of the pool, idle, in a health check or in use alike (shutdown)."""
        async with self._changed:
            self._closed = True
            self._idle.clear()
            self._changed.notify_all()
        deadline = time.monotonic() + CLOSE_WAIT_SECONDS
        while self._tasks and time.monotonic() < deadline:  # creations and removals in flight
            await asyncio.wait(list(self._tasks), timeout=deadline - time.monotonic())
        await asyncio.gather(*(self._destroy(pooled) for pooled in list(self._live.values())), return_exceptions=True)

    def gauges(self) -> Iterator[tuple[str, int]]:
        yield "size", self.size
        yield "idle", len(self._idle)
        yield "in_use", self._in_use


def start_attached(api: APIClient, body: dict[str, Any], orphaned: Callable[[str], None], kind: str) -> Pooled:
    """Create and start a bootstrap container and attach to it. One that fails on the way is removed
    again, now or, when the engine cannot now, by ``orphaned`` (the removal queue) later."""
    container_id = create_own(api, body, kind, orphaned)
    try:
        api.start(container_id)
        return Pooled(container_id, Attached(api, container_id))
    except BaseException:
        remove_or_queue(api, container_id, orphaned)
        raise


def _running(api: APIClient, container_id: str) -> bool:
    state = api.inspect_container(container_id).get("State") or {}
    return bool(state.get("Running")) and not state.get("Paused")


def _healthy(api: APIClient, container_id: str, health_cmd: str | list[str]) -> bool:
    if not _running(api, container_id):
        return False
    command = ["/bin/sh", "-c", health_cmd] if isinstance(health_cmd, str) else list(health_cmd)
    created = api.exec_create(container_id, command)
    api.exec_start(created["Id"])
    return api.exec_inspect(created["Id"]).get("ExitCode") == 0


class PoolManager:
    """Every configured pool: warmed at start, maintained in the background, emptied at shutdown."""

    def __init__(
        self, configs: list[PoolConfig], engine: Engine, checker: CreateChecker, instance: str, metrics: Metrics
    ) -> None:
        self._engine = engine
        self._instance = instance
        self.pools = {config.image: Pool(config, engine, checker, instance, metrics) for config in configs}
        for pool in self.pools.values():
            pool.check_policy()
        metrics.watch_pools(lambda: [(image, dict(pool.gauges())) for image, pool in self.pools.items()])

    def get(self, image: str) -> Pool | None:
        return self.pools.get(image)

    async def start(self) -> None:
        """Remove what an earlier process of this runner instance left behind, then warm the pools.

        Always, pools configured or not: pooled containers carry no TTL, and the one-shot ones of a
        crashed process would otherwise wait hours for the reaper.
        """
        for label in SWEPT_AT_START:
            await self._sweep(label)
        for pool in self.pools.values():
            pool.top_up()

    async def _sweep(self, label: str) -> None:
        filters = {"label": [label, f"{INSTANCE_LABEL}={self._instance}"]}
        try:
            leftovers = await self._engine.run(lambda api: api.containers(all=True, quiet=True, filters=filters))
            for item in leftovers:
                await self._engine.run(lambda api, cid=str(item["Id"]): remove_if_present(api, cid))  # type: ignore[misc]
        except ApiError as error:
            log.warning("could not sweep old containers labelled %s: %s", label, error.message)
            return
        if leftovers:
            log.info("removed %d containers labelled %s left by an earlier process", len(leftovers), label)

    async def maintain_forever(self, interval_seconds: float) -> None:
        while True:
            await asyncio.sleep(interval_seconds)
            for pool in self.pools.values():
                try:
                    await pool.maintain()
                except Exception:
                    log.warning("pool %s: maintenance failed", pool.config.image, exc_info=True)

    async def close(self) -> None:
        await asyncio.gather(*(pool.close() for pool in self.pools.values()), return_exceptions=True)

    def stats(self) -> list[dict[str, Any]]:
        return [pool.stats() for pool in self.pools.values()]
