"""The managed scope's memory of full ids: bounded, least recently used first out, forgettable."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from docker_runner.containers import managed
from docker_runner.containers.managed import ManagedScope


def _scope() -> ManagedScope:
    return ManagedScope(cast(Any, None), managed_only=True)  # no engine: only remembered ids are asked for


def _id(number: int) -> str:
    return f"{number:064x}"


def test_a_remembered_id_needs_no_engine_and_a_forgotten_one_does() -> None:
    scope = _scope()
    scope.remember(_id(1))
    assert asyncio.run(scope.container(_id(1))) == _id(1)
    scope.forget(_id(1))
    assert _id(1) not in scope._known


def test_the_memory_is_bounded_and_keeps_the_recently_used(monkeypatch: Any) -> None:
    """Past the bound the least recently used id goes first; an id just used stays."""
    monkeypatch.setattr(managed, "KNOWN_IDS_KEPT", 3)
    scope = _scope()
    for number in (1, 2, 3):
        scope.remember(_id(number))
    asyncio.run(scope.container(_id(1)))  # used: now the most recent
    scope.remember(_id(4))
    assert list(scope._known) == [_id(3), _id(1), _id(4)]
