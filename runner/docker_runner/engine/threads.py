"""The one place where blocking work leaves the event loop: every engine call, stream read,
socket write and disk-bound rewrite goes through :func:`in_thread`, on the thread budget
(``anyio.CapacityLimiter``) its caller names."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar, TypeVarTuple, Unpack

import anyio
import anyio.to_thread

T = TypeVar("T")
Args = TypeVarTuple("Args")


async def in_thread(
    fn: Callable[[Unpack[Args]], T],
    *args: *Args,
    limiter: anyio.CapacityLimiter,
    abandon_on_cancel: bool = False,
) -> T:
    """``fn(*args)`` on a worker thread of ``limiter``'s budget. With ``abandon_on_cancel`` a
    cancelled caller does not wait for the thread (which must then be told to stop another way)."""
    return await anyio.to_thread.run_sync(fn, *args, limiter=limiter, abandon_on_cancel=abandon_on_cancel)
