"""Prometheus metrics of one runner (a registry per app, so that several can live in one process).

Every label value comes from a route template, a fixed code or a status: never a container id or
a raw path, so the number of series stays bounded whatever clients send.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Literal, get_args

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from . import __version__

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
EXEC_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)
JOB_BUCKETS = (0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 1800, 3600, 7200, 14400)
JOB_STATUSES = ("completed", "error", "cancelled")
# One family for one-shot runs (kind="run", POST /v1/run) and test runs (kind="test", /v1/test):
# both are the same orchestration (a container used once, pooled or fresh, a script, the same ways
# to end), so one query sums or splits them, and the pool hit ratio covers both.
RunKind = Literal["run", "test"]
RUN_KINDS: tuple[RunKind, ...] = get_args(RunKind)
# exited: the script ended with 0; failed: it ended otherwise (a non-zero code, or its container
# died under it); timeout: past timeoutMs; cancelled: the client left or the shutdown cut it;
# error: the runner could not run it (no container, the pool exhausted, the upload failed...).
RunOutcome = Literal["exited", "failed", "timeout", "cancelled", "error"]
RUN_OUTCOMES: tuple[RunOutcome, ...] = get_args(RunOutcome)
UNMATCHED_ROUTE = "unmatched"
AUTH_FAILURE_CODES = (
    "missing_headers",
    "invalid_timestamp",
    "timestamp_out_of_range",
    "replayed_nonce",
    "invalid_signature",
    "invalid_ticket",
)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _CachedProbe(Collector):
    """A gauge whose value comes from the engine, asked at most every ``max_age`` seconds."""

    def __init__(self, name: str, documentation: str, probe: Callable[[], float | None], max_age: float = 5) -> None:
        self._name = name
        self._documentation = documentation
        self._probe = probe
        self._max_age = max_age
        self._value: float | None = None
        self._at = float("-inf")

    def describe(self) -> Any:
        # Without describe(), registering calls collect(): the probe would run when the runner is
        # created and its value be served, stale, for max_age.
        yield GaugeMetricFamily(self._name, self._documentation)

    def collect(self) -> Any:
        if time.monotonic() - self._at > self._max_age:
            self._value = self._probe()
            self._at = time.monotonic()
        family = GaugeMetricFamily(self._name, self._documentation)
        if self._value is not None:
            family.add_metric([], self._value)
        yield family


class _PoolGauges(Collector):
    def __init__(self, gauges: Callable[[], list[tuple[str, dict[str, int]]]]) -> None:
        self._gauges = gauges

    def collect(self) -> Any:
        families = {
            name: GaugeMetricFamily(f"docker_runner_pool_{name}", f"Pooled containers: {name}", labels=["pool"])
            for name in ("size", "idle", "in_use")
        }
        for pool, values in self._gauges():
            for name, number in values.items():
                families[name].add_metric([pool], number)
        yield from families.values()


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "docker_runner_http_requests", "HTTP requests answered", ["route", "method", "status"], registry=r
        )
        self.request_seconds = Histogram(
            "docker_runner_http_request_duration_seconds",
            "Time to the start of the answer (streams: until they start)",
            ["route", "method"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.auth_failures = Counter("docker_runner_auth_failures", "Refused authentications", ["code"], registry=r)
        self.exec_runs = Counter("docker_runner_exec_runs", "exec/run calls by how they ended", ["outcome"], registry=r)
        self.exec_seconds = Histogram(
            "docker_runner_exec_duration_seconds", "exec/run durations", buckets=EXEC_BUCKETS, registry=r
        )
        self.exec_timeouts = Counter("docker_runner_exec_timeouts", "exec/run timeouts", ["kind"], registry=r)
        self.exec_kills = Counter("docker_runner_exec_kills", "Exec process trees killed", ["reason"], registry=r)
        self.exec_channels = Gauge(
            "docker_runner_exec_channels_open", "Resident command channels open (idle or running a command)", registry=r
        )
        self.sse_subscribers = Gauge("docker_runner_sse_subscribers", "Open SSE streams", ["stream"], registry=r)
        self.ws_sessions = Gauge("docker_runner_ws_sessions", "Open interactive exec sessions", registry=r)
        self.engine_errors = Counter(
            "docker_runner_engine_errors", "Engine failures by engine status", ["status"], registry=r
        )
        self.nonce_cache = Gauge("docker_runner_nonce_cache_entries", "Nonces remembered", registry=r)
        self.removals_pending = Gauge(
            "docker_runner_removals_pending",
            "Containers of the runner's own work the engine could not remove yet (retried until done)",
            registry=r,
        )
        self.pool_created = Counter("docker_runner_pool_created", "Pooled containers started", ["pool"], registry=r)
        self.pool_destroyed = Counter("docker_runner_pool_destroyed", "Pooled containers removed", ["pool"], registry=r)
        self.pool_health_failures = Counter(
            "docker_runner_pool_health_failures", "Pooled containers found unhealthy", ["pool"], registry=r
        )
        self.pool_acquisitions = Counter(
            "docker_runner_pool_acquisitions", "Runs that took a pooled container", ["pool"], registry=r
        )
        self.pool_acquire_seconds = Histogram(
            "docker_runner_pool_acquire_wait_seconds",
            "Time a run waited for a pooled container",
            ["pool"],
            buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30),
            registry=r,
        )
        self.jobs = Counter("docker_runner_jobs", "Jobs ended, by final status", ["status"], registry=r)
        self.jobs_active = Gauge("docker_runner_jobs_active", "Jobs starting or running", registry=r)
        self.job_seconds = Histogram(
            "docker_runner_job_duration_seconds",
            "Jobs from their creation (starting) to their end, by final status",
            ["status"],
            buckets=JOB_BUCKETS,
            registry=r,
        )
        self.runs = Counter(
            "docker_runner_runs",
            "One-shot (kind=run) and test (kind=test) runs by how they ended; pooled: a pool's container served it",
            ["kind", "outcome", "pooled"],
            registry=r,
        )
        self.run_seconds = Histogram(
            "docker_runner_run_duration_seconds",
            "One-shot and test runs, from asking for a container to the answer (pool wait or start, upload, script)",
            ["kind", "pooled"],
            buckets=EXEC_BUCKETS,
            registry=r,
        )
        info = Gauge("docker_runner_info", "The runner's version", ["version"], registry=r)
        info.labels(version=__version__).set(1)
        for stream in ("events", "logs", "jobs"):
            self.sse_subscribers.labels(stream=stream)
        for outcome in ("exited", "timeout", "idle_timeout", "cancelled"):
            self.exec_runs.labels(outcome=outcome)
        for kind in ("total", "idle"):
            self.exec_timeouts.labels(kind=kind)
        for reason in ("timeout", "disconnect"):
            self.exec_kills.labels(reason=reason)
        for status in JOB_STATUSES:
            self.jobs.labels(status=status)
            self.job_seconds.labels(status=status)
        for kind in RUN_KINDS:
            for pooled in ("true", "false"):
                self.run_seconds.labels(kind=kind, pooled=pooled)
                for outcome in RUN_OUTCOMES:
                    self.runs.labels(kind=kind, outcome=outcome, pooled=pooled)
        for code in AUTH_FAILURE_CODES:
            self.auth_failures.labels(code=code)

    def count_run(self, kind: RunKind, outcome: RunOutcome, pooled: bool, seconds: float) -> None:
        """One one-shot or test run that ended."""
        flag = "true" if pooled else "false"
        self.runs.labels(kind=kind, outcome=outcome, pooled=flag).inc()
        self.run_seconds.labels(kind=kind, pooled=flag).observe(seconds)

    def count_job(self, status: str, seconds: float) -> None:
        """One job that ended with ``status`` (in JOB_STATUSES) after ``seconds``."""
        self.jobs.labels(status=status).inc()
        self.job_seconds.labels(status=status).observe(seconds)

    def watch_pools(self, gauges: Callable[[], list[tuple[str, dict[str, int]]]]) -> None:
        """Per-pool size, idle and in-use containers, read at scrape time."""
        self.registry.register(_PoolGauges(gauges))

    def watch_engine(self, reachable: Callable[[], float | None], managed: Callable[[], float | None]) -> None:
        """Gauges read from the engine at scrape time (cached briefly)."""
        self.registry.register(
            _CachedProbe("docker_runner_engine_up", "1 when the engine answers a ping, else 0", reachable)
        )
        self.registry.register(
            _CachedProbe("docker_runner_managed_containers", "Containers carrying the runner's label", managed)
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
