"""Open probes: liveness and engine readiness."""

from __future__ import annotations

from litestar import get

from ..auth import OPEN_ROUTE
from ..runtime import RuntimeDep


@get("/v1/health", opt={OPEN_ROUTE: True}, sync_to_thread=False)
def health() -> dict[str, str]:
    return {"status": "ok"}


@get("/v1/ready", opt={OPEN_ROUTE: True})
async def ready(runtime: RuntimeDep) -> dict[str, str]:
    await runtime.engine.ping()
    return {"status": "ready"}


ROUTES = [health, ready]
