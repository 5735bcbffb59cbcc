"""Open probes: liveness and engine readiness."""

from __future__ import annotations

import msgspec
from litestar import get

from ..dependencies import RuntimeDep
from ..middleware import OPEN_ROUTE
from ..openapi import errors


class Status(msgspec.Struct):
    status: str


@get("/v1/health", opt={OPEN_ROUTE: True}, sync_to_thread=False, security=[])
def health() -> Status:
    return Status("ok")


@get("/v1/ready", opt={OPEN_ROUTE: True}, security=[], responses={503: errors()[503]})
async def ready(runtime: RuntimeDep) -> Status:
    await runtime.engine.ping()
    return Status("ready")


ROUTES = [health, ready]
