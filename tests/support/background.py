"""Work a test runs beside itself, in threads of their own: what each call answered or raised is
kept, and read with a deadline, so that a call that failed fails the test with its own error."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")


@contextlib.contextmanager
def in_background(call: Callable[[], T]) -> Iterator[Future[T]]:
    """``call`` running in a thread while the block runs; read it with ``result(timeout=...)`` or
    ``exception(timeout=...)``. Leaving the block waits for it, unless the block failed."""
    pool = ThreadPoolExecutor(1)
    try:
        yield pool.submit(call)
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


def all_at_once(calls: list[Callable[[], T]], timeout: float) -> list[T]:
    """Every call at once, each in a thread of its own: their answers in order, or the first
    call's error that raised (with its own traceback), once all have ended or ``timeout`` passed."""
    pool = ThreadPoolExecutor(len(calls))
    try:
        futures = [pool.submit(call) for call in calls]
        return [future.result(timeout=timeout) for future in futures]
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
