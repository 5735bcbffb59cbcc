"""create_app(settings) -> Litestar: routes, auth middleware, error handlers, background work."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

import anyio
from litestar import Litestar
from litestar.di import Provide

from .containers.reaper import reap_forever
from .http.dependencies import provide_runtime
from .http.errors import exception_handlers
from .http.forwarding import ForwardingMiddleware
from .http.middleware import AuthMiddleware
from .http.observe import RequestObserver
from .http.openapi import openapi_config, openapi_document
from .http.routes import (
    archives,
    cluster,
    containers,
    exec,
    health,
    images,
    interactive,
    jobs,
    metrics,
    streams,
    workloads,
)
from .http.routes.ui import ROUTES as UI_ROUTES
from .runtime import Runtime
from .settings import Settings
from .workloads.runs import shutdown as shut_runs_down

log = logging.getLogger("docker_runner")
REMOVALS_DRAIN_SECONDS = 10  # at shutdown, for removals the engine could not do yet


def create_app(settings: Settings, runtime: Runtime | None = None) -> Litestar:
    runtime = runtime or Runtime.create(settings)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Litestar) -> AsyncIterator[None]:
        async with anyio.create_task_group() as background:
            background.start_soon(
                reap_forever,
                runtime.engine,
                runtime.touches,
                settings.instance,
                settings.reaper_interval_ms / 1000,
                runtime.cluster.remove_placed if runtime.cluster is not None else None,
            )
            await runtime.pools.start()
            await runtime.jobs.start()
            background.start_soon(runtime.pools.maintain_forever, settings.pool_maintenance_ms / 1000)
            background.start_soon(runtime.engine.removals.run_forever)
            if runtime.cluster is not None:
                background.start_soon(runtime.cluster.peers.heartbeat_forever)
                background.start_soon(runtime.cluster.tidy_forever)
            try:
                yield
            finally:
                background.cancel_scope.cancel()
                with anyio.CancelScope(shield=True):
                    await runtime.pools.close()
                    await shut_runs_down(runtime.runs)
                    await runtime.jobs.shutdown()
                    await runtime.engine.removals.drain(REMOVALS_DRAIN_SECONDS)
                    await runtime.aclose()
        runtime.engine.close()

    auth = AuthMiddleware(
        secrets=runtime.secrets,
        nonces=runtime.nonces,
        skew_ms=settings.clock_skew_ms,
        max_body_bytes=settings.max_body_bytes,
        max_streamed_bytes=settings.max_archive_bytes,
        tickets=runtime.tickets,
        on_failure=lambda code: runtime.metrics.auth_failures.labels(code=code).inc(),
        spool_dir=None if settings.spool_dir is None else str(settings.spool_dir),
    )
    app = Litestar(
        route_handlers=[
            *health.ROUTES,
            *containers.ROUTES,
            *archives.ROUTES,
            *images.ROUTES,
            *exec.ROUTES,
            *streams.ROUTES,
            *interactive.ROUTES,
            *metrics.ROUTES,
            *workloads.ROUTES,
            *jobs.ROUTES,
            *(UI_ROUTES if settings.ui else []),  # the browser terminal, off by default
            *(cluster.ROUTES if runtime.cluster is not None else []),
            openapi_document,
        ],
        # authentication first: only a verified request is forwarded to another node's runner
        middleware=[auth, ForwardingMiddleware()] if runtime.cluster is not None else [auth],
        dependencies={"runtime": Provide(provide_runtime, sync_to_thread=False)},
        exception_handlers=exception_handlers(),
        lifespan=[lifespan],
        request_max_body_size=settings.max_body_bytes,
        openapi_config=openapi_config(),
        logging_config=None,
    )
    app.state.runtime = runtime
    return app


def create_asgi(settings: Settings, runtime: Runtime | None = None) -> RequestObserver:
    """The app as served: the Litestar app inside the request log and metrics layer."""
    runtime = runtime or Runtime.create(settings)
    return RequestObserver(create_app(settings, runtime), runtime.metrics)
