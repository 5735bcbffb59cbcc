"""The runner's listening socket: bound and listening before the app starts."""

from __future__ import annotations

import pytest

from docker_runner.server import ListenError, bind_listener


def test_a_port_already_listened_on_is_refused_naming_the_variables() -> None:
    """A second runner cannot bind the first one's port, even before the first serves requests."""
    first = bind_listener("127.0.0.1", 0)
    try:
        with pytest.raises(ListenError) as refused:
            bind_listener("127.0.0.1", first.getsockname()[1])
        assert "DOCKER_RUNNER_PORT" in str(refused.value)
    finally:
        first.close()
