"""The removal of the containers the runner makes for its own work (one-shot, test-run, pooled and
job containers, and a client's container whose start failed): retried until it is done.

A removal is tried at once; when the engine cannot do it now (it is away, or restarting), the
container goes into a queue that a background task retries with a growing pause (up to
``MAX_DELAY_SECONDS``), until the engine removes it or says it is gone. The engine's own
availability check makes the retries cheap while it is away, and the first one after its return
succeeds. A crash of the runner itself loses the queue: the start-up sweep of the next process is
the net for that.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import docker
import docker.errors

from ..errors import ApiError

log = logging.getLogger("docker_runner.removals")

FIRST_DELAY_SECONDS = 0.25
MAX_DELAY_SECONDS = 5.0


def remove_if_present(api: docker.APIClient, container_id: str) -> None:
    """Force-remove a container (its anonymous volumes too); one already gone (auto-removed) is fine."""
    with contextlib.suppress(docker.errors.NotFound):
        api.remove_container(container_id, force=True, v=True)


def remove_or_queue(api: docker.APIClient, container_id: str, later: Callable[[str], None]) -> None:
    """Remove a container that failed on its way up; when the engine cannot now, ``later`` queues it."""
    try:
        remove_if_present(api, container_id)
    except Exception as exc:
        log.warning("could not remove container %s after a failure (%s): queued", container_id[:12], exc)
        later(container_id)


def create_own(api: docker.APIClient, body: dict[str, Any], kind: str, later: Callable[[str], None]) -> str:
    """Create a container the runner makes for its own work, under a name of its own: when the engine
    goes away mid-create it may have made the container without answering its id, and the name is
    then what ``later`` (the removal queue) removes it by once the engine is back."""
    name = f"docker-runner-{kind}-{uuid.uuid4().hex[:16]}"
    try:
        return str(api.create_container_from_config(body, name=name)["Id"])
    except docker.errors.APIError as error:
        if error.status_code is not None and error.status_code < 500:
            raise  # refused: nothing was made
        later(name)
        raise
    except Exception:
        later(name)
        raise


EngineCall = Callable[[Callable[[docker.APIClient], Any]], Awaitable[Any]]


class Removals:
    def __init__(
        self,
        run: EngineCall,
        first_delay_seconds: float = FIRST_DELAY_SECONDS,
        max_delay_seconds: float = MAX_DELAY_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._run = run
        self._first_delay = first_delay_seconds
        self._max_delay = max_delay_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._pending: dict[str, tuple[float, float]] = {}  # container id -> (next try, pause after it)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake = asyncio.Event()

    def __len__(self) -> int:
        return len(self._pending)

    def pending(self) -> set[str]:
        with self._lock:
            return set(self._pending)

    def later(self, container_id: str) -> None:
        """Queue a removal (from any thread): it is retried until the engine has done it."""
        with self._lock:
            if container_id not in self._pending:
                self._pending[container_id] = (self._clock(), self._first_delay)
        loop = self._loop
        if loop is not None:
            loop.call_soon_threadsafe(self._wake.set)

    async def now(self, container_id: str, what: str) -> bool:
        """Remove at once; when the engine cannot, queue it (and say so). True when it is gone now."""
        try:
            await self._run(lambda api: remove_if_present(api, container_id))
        except ApiError as error:
            log.warning(
                "could not remove %s %s yet (%s): retrying until it is gone", what, container_id[:12], error.message
            )
            self.later(container_id)
            return False
        return True

    async def run_forever(self) -> None:
        """Retry the queued removals, each when its pause has passed."""
        self._loop = asyncio.get_running_loop()
        while True:
            await self._retry_due()
            await self._sleep_until_due()

    async def _sleep_until_due(self) -> None:
        with self._lock:
            due = min((when for when, _ in self._pending.values()), default=None)
        self._wake.clear()
        timeout = None if due is None else max(0.0, due - self._clock())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout)

    async def _retry_due(self) -> None:
        now = self._clock()
        with self._lock:
            due = [(cid, pause) for cid, (when, pause) in self._pending.items() if when <= now]
        for container_id, pause in due:
            try:
                await self._run(lambda api, cid=container_id: remove_if_present(api, cid))  # type: ignore[misc]
            except ApiError:
                with self._lock:
                    if container_id in self._pending:
                        self._pending[container_id] = (self._clock() + pause, min(pause * 2, self._max_delay))
                continue
            with self._lock:
                self._pending.pop(container_id, None)
            log.info("removed container %s, which the engine could not remove earlier", container_id[:12])

    async def drain(self, seconds: float) -> None:
        """At shutdown: keep retrying what is queued for up to ``seconds``."""
        deadline = self._clock() + seconds
        while self._pending and self._clock() < deadline:
            with self._lock:
                for container_id, (_, pause) in list(self._pending.items()):
                    self._pending[container_id] = (self._clock(), pause)
            await self._retry_due()
            if self._pending:
                await asyncio.sleep(min(self._first_delay, max(0.0, deadline - self._clock())))
        if self._pending:
            log.warning("%d containers could not be removed before shutdown: %s", len(self._pending), self.pending())
