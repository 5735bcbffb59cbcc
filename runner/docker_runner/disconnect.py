"""Noticing that an HTTP client went away while its request still runs."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from litestar.types import Receive

from .exec_run import Canceller


async def _cancel_on_disconnect(receive: Receive, canceller: Canceller) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            canceller.cancel()
            return


def watch_disconnect(receive: Receive) -> Callable[[Canceller], asyncio.Future[None]]:
    """A watcher factory: given a canceller, cancel it when the client disconnects (cancel the
    returned future once the work is done)."""

    def start(canceller: Canceller) -> asyncio.Future[None]:
        return asyncio.ensure_future(_cancel_on_disconnect(receive, canceller))

    return start
