"""What handlers share for the life of the app, handed to them by dependency injection."""

from __future__ import annotations

from dataclasses import dataclass, field

from .auth.checks import NonceCache
from .auth.nonces import MemoryNonceStore, NonceStore, RedisNonceStore, redis_client
from .auth.tickets import MAX_TTL_MS, TICKETS_KEPT, TicketBook
from .cluster.cluster import Cluster
from .containers.managed import ManagedScope
from .containers.reaper import TouchLog
from .containers.spec import MANAGED_LABEL
from .engine.core import Engine
from .errors import ApiError
from .exec.channels import ChannelBook
from .exec.draining import Draining
from .jobs.manager import JobManager
from .metrics import Metrics
from .policy.checker import CreateChecker, Policy, load_policy, sockets_for
from .settings import Settings
from .workloads.pool import PoolManager
from .workloads.pool_config import load_pools
from .workloads.runs import OneUseRuns


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    nonces: NonceStore
    policy: Policy
    checker: CreateChecker
    managed: ManagedScope
    tickets: TicketBook
    metrics: Metrics
    pools: PoolManager
    runs: OneUseRuns
    jobs: JobManager
    channels: ChannelBook
    cluster: Cluster | None = None  # DOCKER_RUNNER_CLUSTER=swarm: one runner of many
    touches: TouchLog = field(default_factory=TouchLog)
    draining: Draining = field(default_factory=Draining)

    @classmethod
    def create(cls, settings: Settings, policy: Policy | None = None) -> Runtime:
        """Everything the app shares; ``policy`` defaults to DOCKER_RUNNER_POLICY's (PolicyError if unusable)."""
        metrics = Metrics()
        engine = Engine(
            settings, on_error=lambda error: metrics.engine_errors.labels(status=_engine_status(error)).inc()
        )
        policy = policy or load_policy(settings.policy_path)
        nonces, used_tickets = _nonce_stores(settings, metrics)
        metrics.removals_pending.set_function(lambda: len(engine.removals))
        metrics.watch_engine(engine.reachable, lambda: engine.managed_count(f"{MANAGED_LABEL}=true"))
        checker = CreateChecker(policy, sockets_for(settings.docker_host))
        channels = ChannelBook(settings.fast_exec_channels, settings.fast_exec_max_channels)
        metrics.exec_channels.set_function(lambda: channels.open)
        pools = PoolManager(load_pools(settings.pools), engine, checker, settings.instance, metrics)
        runs = OneUseRuns(
            engine=engine,
            checker=checker,
            pools=pools,
            instance=settings.instance,
            acquire_timeout_seconds=settings.pool_acquire_timeout_ms / 1000,
            live=set(),
            removing=set(),
        )
        return cls(
            settings=settings,
            engine=engine,
            nonces=nonces,
            policy=policy,
            checker=checker,
            managed=ManagedScope(engine, managed_only=not settings.scope_all),
            tickets=TicketBook(lambda: settings.secrets, used_tickets),
            metrics=metrics,
            pools=pools,
            runs=runs,
            jobs=JobManager(engine, checker, settings, metrics),
            channels=channels,
            cluster=Cluster(engine, settings) if settings.cluster == "swarm" else None,
        )

    async def aclose(self) -> None:
        """What the runtime holds open besides the engine: the nonce store's connections."""
        self.channels.close_all()
        await self.nonces.aclose()
        if self.cluster is not None:
            await self.cluster.aclose()

    def secrets(self) -> tuple[str, ...]:
        return self.settings.secrets


def _nonce_stores(settings: Settings, metrics: Metrics) -> tuple[NonceStore, NonceStore]:
    """(accepted nonces, spent tickets): this process's memory, or Redis shared by every runner."""
    if settings.nonce_store == "memory":
        cache = NonceCache(settings.nonce_cache_size, settings.replay_window_ms)
        metrics.nonce_cache.set_function(lambda: len(cache))
        return MemoryNonceStore(cache), MemoryNonceStore(NonceCache(TICKETS_KEPT, MAX_TTL_MS))
    client = redis_client(settings.nonce_store)
    return RedisNonceStore(client, "docker-runner:nonce:", settings.replay_window_ms), RedisNonceStore(
        client, "docker-runner:ticket:", MAX_TTL_MS
    )


def _engine_status(error: ApiError) -> str:
    """The engine's own status where it answered; "unavailable" where it did not."""
    if error.code == "docker_unavailable":
        return "unavailable"
    return str(error.details.get("dockerStatus") or error.status)
