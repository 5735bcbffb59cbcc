"""How handlers get the runtime: by dependency injection, as the parameter named ``runtime``."""

from __future__ import annotations

from litestar.datastructures import State
from litestar.di import NamedDependency

from ..runtime import Runtime


def provide_runtime(state: State) -> Runtime:
    runtime: Runtime = state.runtime
    return runtime


RuntimeDep = NamedDependency[Runtime]
