"""The removal queue: a removal the engine cannot do now is retried, with growing pauses, until done."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from docker_runner.engine.removals import Removals
from docker_runner.errors import docker_unavailable


class FlakyEngine:
    """Fails the first ``failures`` removals (as an engine that is away), then removes."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.removed: list[str] = []
        self.attempts = 0

    async def run(self, fn: Callable[[Any], Any]) -> Any:
        self.attempts += 1
        if self.attempts <= self.failures:
            raise docker_unavailable("ConnectionError")
        return fn(self)

    def remove_container(self, container_id: str, force: bool, v: bool) -> None:
        self.removed.append(container_id)


async def _until(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not condition():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.005)


def test_a_removal_that_fails_now_is_queued_and_retried_until_done() -> None:
    """now() answers False and queues; the background task retries past the failures and empties the queue."""

    async def scenario() -> None:
        engine = FlakyEngine(failures=3)
        removals = Removals(engine.run, first_delay_seconds=0.01, max_delay_seconds=0.04)
        worker = asyncio.ensure_future(removals.run_forever())
        try:
            assert await removals.now("c1", "one-shot container") is False
            assert removals.pending() == {"c1"}
            await _until(lambda: not removals.pending())
            assert engine.removed == ["c1"] and engine.attempts == 4
        finally:
            worker.cancel()

    asyncio.run(scenario())


def test_a_removal_queued_from_a_thread_wakes_the_worker() -> None:
    """later() from an engine thread (a container orphaned mid-creation) is picked up at once."""

    async def scenario() -> None:
        engine = FlakyEngine(failures=0)
        removals = Removals(engine.run, first_delay_seconds=0.01)
        worker = asyncio.ensure_future(removals.run_forever())
        try:
            await asyncio.sleep(0)
            await asyncio.to_thread(removals.later, "orphan")
            await _until(lambda: engine.removed == ["orphan"])
        finally:
            worker.cancel()

    asyncio.run(scenario())


def test_drain_keeps_trying_until_its_deadline() -> None:
    """At shutdown, drain() retries what is queued, and gives up only at its deadline."""

    async def scenario() -> None:
        engine = FlakyEngine(failures=2)
        removals = Removals(engine.run, first_delay_seconds=0.01)
        removals.later("c2")
        await removals.drain(5)
        assert engine.removed == ["c2"] and not removals.pending()
        never = Removals(FlakyEngine(failures=10**6).run, first_delay_seconds=0.01)
        never.later("c3")
        await never.drain(0.1)
        assert never.pending() == {"c3"}

    asyncio.run(scenario())
