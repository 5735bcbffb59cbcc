"""The runner's connections to the engine: a stale pooled one is replaced, never a 500."""

from __future__ import annotations

import pytest

from docker_runner.engine.core import Engine
from tests.support.server import make_settings

pytestmark = pytest.mark.docker


def _close_pooled_sockets(engine: Engine) -> int:
    """Close the socket of every idle pooled connection behind the pool's back (as an engine restart,
    or a stream cut from another thread, leaves them)."""
    api = engine.api()
    adapter = api.get_adapter(api.base_url)
    closed = 0
    for key in list(adapter.pools.keys()):
        for connection in list(adapter.pools[key].pool.queue):
            if connection is not None and connection.sock is not None:
                connection.sock.close()
                closed += 1
    return closed


def test_a_pooled_connection_whose_socket_was_closed_is_replaced() -> None:
    """urllib3 would raise ValueError (descriptor -1) on the next request; the runner opens a fresh one."""
    engine = Engine(make_settings())
    try:
        assert engine._call(lambda api: api.ping())
        assert _close_pooled_sockets(engine) >= 1
        assert engine._call(lambda api: api.ping())
        assert engine._call(lambda api: api.version())["ApiVersion"]
    finally:
        engine.close()
