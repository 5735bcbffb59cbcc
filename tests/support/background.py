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
