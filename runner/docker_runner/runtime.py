"""What handlers share for the life of the app, handed to them by dependency injection."""

from __future__ import annotations

from dataclasses import dataclass, field

from litestar.datastructures import State
from litestar.di import NamedDependency

from .auth import NonceCache
from .engine import Engine
from .reaper import TouchLog
from .settings import Settings


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    nonces: NonceCache
    touches: TouchLog = field(default_factory=TouchLog)

    @classmethod
    def create(cls, settings: Settings) -> Runtime:
        return cls(
            settings=settings,
            engine=Engine(settings),
            nonces=NonceCache(settings.nonce_cache_size, settings.replay_window_ms),
        )

    def secrets(self) -> tuple[str, ...]:
        return (self.settings.shared_secret,)


def provide_runtime(state: State) -> Runtime:
    runtime: Runtime = state.runtime
    return runtime


# How handlers ask for it: by the parameter name ``runtime``.
RuntimeDep = NamedDependency[Runtime]
