"""Work a test runs beside itself, in threads of their own: what each call answered or raised is
kept, and read with a deadline, so that a call that failed fails the test with its own error."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
A = TypeVar("A")


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


def at_once(call: Callable[[A], T], arguments: Iterable[A], timeout: float = 120.0) -> list[T]:
    """``call`` for every argument at once, each in a thread; the answers in order (the first
    call that raised raises here)."""
    arguments = list(arguments)
    with ThreadPoolExecutor(max(1, len(arguments))) as pool:
        futures = [pool.submit(call, argument) for argument in arguments]
        return [future.result(timeout=timeout) for future in futures]
