"""What handlers share for the life of the app, handed to them by dependency injection."""

from __future__ import annotations

from dataclasses import dataclass, field

from litestar.datastructures import State
from litestar.di import NamedDependency

from .auth import NonceCache
from .engine import Engine
from .policy import CreateChecker, Policy, load_policy, sockets_for
from .reaper import TouchLog
from .scope import Scope
from .settings import Settings
from .tickets import TicketBook


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    nonces: NonceCache
    policy: Policy
    checker: CreateChecker
    scope: Scope
    tickets: TicketBook
    touches: TouchLog = field(default_factory=TouchLog)

    @classmethod
    def create(cls, settings: Settings, policy: Policy | None = None) -> Runtime:
        """Everything the app shares; ``policy`` defaults to DOCKER_RUNNER_POLICY's (PolicyError if unusable)."""
        engine = Engine(settings)
        policy = policy or load_policy(settings.policy_path)
        return cls(
            settings=settings,
            engine=engine,
            nonces=NonceCache(settings.nonce_cache_size, settings.replay_window_ms),
            policy=policy,
            checker=CreateChecker(policy, sockets_for(settings.docker_host)),
            scope=Scope(engine, managed_only=not settings.scope_all),
            tickets=TicketBook(lambda: settings.secrets),
        )

    def secrets(self) -> tuple[str, ...]:
        return self.settings.secrets


def provide_runtime(state: State) -> Runtime:
    runtime: Runtime = state.runtime
    return runtime


# How handlers ask for it: by the parameter name ``runtime``.
RuntimeDep = NamedDependency[Runtime]
