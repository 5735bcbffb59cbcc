"""Replays refused across runners: two runners sharing a real redis-server as their nonce store."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack

import httpx
import pytest

from docker_runner_client._signing import sign_headers
from tests.support.redis_server import RedisServer
from tests.support.server import TEST_SECRET, RunningServer, make_settings, running_runner
from tests.support.signed import error_of


@pytest.fixture
def two_runners(redis_server: RedisServer) -> Iterator[tuple[RunningServer, RunningServer]]:
    with ExitStack() as stack:
        first = stack.enter_context(running_runner(make_settings(nonce_store=redis_server.url)))
        second = stack.enter_context(running_runner(make_settings(nonce_store=redis_server.url)))
        yield first, second


def _signed(target: str, nonce: str) -> dict[str, str]:
    return sign_headers(TEST_SECRET, "GET", target, b"", str(int(time.time() * 1000)), nonce)


def test_a_request_accepted_by_one_runner_is_a_replay_to_another(
    two_runners: tuple[RunningServer, RunningServer],
) -> None:
    """The same signed request, sent to a second runner after the first accepted it: 401 replayed_nonce."""
    first, second = two_runners
    headers = _signed("/v1/pools", f"shared-{uuid.uuid4()}")
    assert httpx.get(first.url + "/v1/pools", headers=headers).status_code == 200
    replayed = httpx.get(second.url + "/v1/pools", headers=headers)
    assert (replayed.status_code, error_of(replayed)["code"]) == (401, "replayed_nonce")
    again = httpx.get(first.url + "/v1/pools", headers=headers)
    assert (again.status_code, error_of(again)["code"]) == (401, "replayed_nonce")


def _send_at_once(urls: list[str], headers: dict[str, str]) -> list[int]:
    statuses: list[int] = []
    barrier = threading.Barrier(len(urls))

    def send(url: str) -> None:
        barrier.wait()
        statuses.append(httpx.get(url + "/v1/pools", headers=headers).status_code)

    threads = [threading.Thread(target=send, args=(url,)) for url in urls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return statuses


def test_of_two_runners_racing_with_one_nonce_exactly_one_accepts(
    two_runners: tuple[RunningServer, RunningServer],
) -> None:
    """Sent to both runners at once, many times over: each nonce is accepted exactly once."""
    first, second = two_runners
    for _ in range(20):
        headers = _signed("/v1/pools", f"race-{uuid.uuid4()}")
        statuses = _send_at_once([first.url, second.url], headers)
        assert sorted(statuses) == [200, 401]


def test_a_ticket_spent_on_one_runner_is_spent_on_all(two_runners: tuple[RunningServer, RunningServer]) -> None:
    """A browser ticket opens its stream once, whichever runner it is shown to."""
    first, second = two_runners
    target = "/v1/events/sse?until=1"
    with httpx.Client() as client:
        issue_headers = sign_headers(
            TEST_SECRET,
            "POST",
            "/v1/tickets",
            b'{"path":"/v1/events/sse?until=1"}',
            str(int(time.time() * 1000)),
            str(uuid.uuid4()),
        )
        issue_headers["content-type"] = "application/json"
        ticket = client.post(
            first.url + "/v1/tickets", content=b'{"path":"/v1/events/sse?until=1"}', headers=issue_headers
        ).json()["ticket"]
        opened = client.get(f"{first.url}{target}&ticket={ticket}", timeout=30)
        assert opened.status_code == 200
        elsewhere = client.get(f"{second.url}{target}&ticket={ticket}", timeout=30)
        assert (elsewhere.status_code, error_of(elsewhere)["code"]) == (401, "invalid_ticket")
        assert "already used" in error_of(elsewhere)["message"]


def test_an_unreachable_store_refuses_signed_requests_and_keeps_the_open_ones() -> None:
    """No store, no acceptance: 503 nonce_store_unavailable (retryable); health and metrics still answer."""
    with running_runner(make_settings(nonce_store="redis://127.0.0.1:9/0")) as server:
        refused = httpx.get(server.url + "/v1/pools", headers=_signed("/v1/pools", str(uuid.uuid4())), timeout=30)
        error = error_of(refused)
        assert (refused.status_code, error["code"], error["retryable"]) == (503, "nonce_store_unavailable", True)
        assert httpx.get(server.url + "/v1/health").status_code == 200
        assert httpx.get(server.url + "/metrics").status_code == 200
