"""``GET /metrics`` (open): the runner's Prometheus metrics."""

from __future__ import annotations

from litestar import Response, get

from ...metrics import CONTENT_TYPE
from ..dependencies import RuntimeDep
from ..middleware import OPEN_ROUTE


@get("/metrics", opt={OPEN_ROUTE: True}, security=[], include_in_schema=False, sync_to_thread=True)
def metrics(runtime: RuntimeDep) -> Response[bytes]:
    # sync and in a thread: the engine gauges ask the engine (briefly cached)
    return Response(runtime.metrics.render(), media_type=CONTENT_TYPE)


ROUTES = [metrics]
