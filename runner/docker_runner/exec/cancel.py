"""What cancels a long blocking run (an exec run, a one-shot run): the HTTP client going away, a
shutdown whose grace runs out, or the request's own cancellation."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from ..engine.core import APIClient, Engine
from ..engine.sockets import Canceller
from .draining import Draining

T = TypeVar("T")
Receive = Callable[[], Awaitable[Mapping[str, Any]]]  # an ASGI receive


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


async def run_cancellable(
    engine: Engine,
    work: Callable[[APIClient, Canceller], T],
    watch_client: Callable[[Canceller], asyncio.Future[None]],
    draining: Draining,
) -> T:
    """Run blocking ``work`` on the long-call budget with a Canceller that fires when the client
    leaves, when the shutdown cuts in-flight work, or when the caller is cancelled."""
    canceller = Canceller()

    def run(api: APIClient) -> T:
        if not canceller.claim():
            raise RuntimeError("the caller gave up before the work began")  # nobody reads this answer
        try:
            return work(api, canceller)
        finally:
            canceller.close()

    watcher = watch_client(canceller)
    try:
        with draining.track(canceller.cancel):
            return await engine.run_stream(run, on_cancel=canceller.cancel)
    finally:
        watcher.cancel()
        canceller.close_unclaimed()  # the work never began (the engine was refused at once, say)
