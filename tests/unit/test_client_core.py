"""The client's pure core: configuration, timeouts, retries (no network)."""

from __future__ import annotations

import pytest

from docker_runner_client import ExecOptions, exec_read_timeout_ms
from docker_runner_client import _routes as routes
from docker_runner_client._client import ClientCore
from docker_runner_client._exceptions import RunnerTransportError, UpstreamError


@pytest.mark.parametrize(
    ("default", "timeout", "idle", "expected"),
    [
        (30_000, 0, 0, None),
        (30_000, 1_000, 0, 30_000),
        (30_000, 0, 60_000, 65_000),
        (30_000, 120_000, 60_000, 125_000),
        (30_000, 25_000, 0, 30_000),
        (30_000, 25_001, 0, 30_001),
    ],
)
def test_exec_read_timeout(default: int, timeout: int, idle: int, expected: float | None) -> None:
    """max(default, max(timeoutMs, idleTimeoutMs) + 5 s); no read bound at all when both are 0."""
    assert exec_read_timeout_ms(default, timeout, idle) == expected


def _core(**env: str) -> ClientCore:
    return ClientCore(None, None, None, 2, 100, environ={"DOCKER_RUNNER_SHARED_SECRET": "s" * 32, **env})


def test_exec_call_timeouts() -> None:
    """An unbounded exec has no read timeout; a bounded one is stretched; other calls keep the default."""
    core = _core(DOCKER_RUNNER_TIMEOUT_MS="10000")
    unbounded = core.timeout_for(routes.exec_run("c", "x", None).call)
    assert unbounded.read is None and unbounded.connect == 10
    bounded = core.timeout_for(routes.exec_run("c", "x", ExecOptions(timeout_ms=60_000)).call)
    assert bounded.read == 65
    assert core.timeout_for(routes.inspect_container("c").call).read == 10


def test_configuration_precedence() -> None:
    """Arguments beat the environment; the environment beats the defaults."""
    env = {
        "DOCKER_RUNNER_URL": "http://env:1/",
        "DOCKER_RUNNER_SHARED_SECRET": "e" * 32,
        "DOCKER_RUNNER_TIMEOUT_MS": "5",
    }
    from_env = ClientCore(None, None, None, 0, 0, environ=env)
    assert (from_env.base_url, from_env.timeout_ms) == ("http://env:1", 5)
    from_args = ClientCore("http://arg:2", "a" * 32, 7, 0, 0, environ=env)
    assert (from_args.base_url, from_args.timeout_ms) == ("http://arg:2", 7)
    assert ClientCore(None, "a" * 32, None, 0, 0, environ={}).base_url == "http://127.0.0.1:7071"


def test_missing_secret_names_the_variable() -> None:
    with pytest.raises(ValueError, match="DOCKER_RUNNER_SHARED_SECRET"):
        ClientCore(None, None, None, 0, 0, environ={})


def test_retry_policy() -> None:
    """Only retryable failures are retried, a bounded number of times, and exec/run never."""
    core = _core()
    retryable = UpstreamError("down", status_code=503, code="docker_unavailable", retryable=True)
    final = UpstreamError("bad", status_code=502, code="x", retryable=False)
    inspect = routes.inspect_container("c").call
    exec_call = routes.exec_run("c", "x", None).call
    assert core.retry_delay(inspect, retryable, 0) is not None
    assert core.retry_delay(inspect, retryable, 2) is None
    assert core.retry_delay(inspect, final, 0) is None
    assert core.retry_delay(exec_call, retryable, 0) is None
    unreachable = RunnerTransportError("x", code="runner_unreachable", retryable=True)
    delay = core.retry_delay(inspect, unreachable, 1)
    assert delay is not None and 0.1 <= delay <= 0.2
