"""Header checks and the nonce cache of docs/protocol.md section 1 (pure)."""

from __future__ import annotations

import pytest

from docker_runner.auth.checks import NonceCache, check_headers
from docker_runner.errors import ApiError

NOW = 1_767_225_600_000
SKEW = 60_000


def _code(timestamp: str | None, nonce: str | None = "n", signature: str | None = "s") -> str:
    with pytest.raises(ApiError) as caught:
        check_headers(timestamp, nonce, signature, NOW, SKEW)
    assert caught.value.status == 401
    return caught.value.code


@pytest.mark.parametrize(
    ("timestamp", "nonce", "signature"),
    [(None, "n", "s"), ("1", None, "s"), ("1", "n", None), ("", "n", "s"), ("1", "", "s"), ("1", "n", "")],
)
def test_missing_or_empty_header(timestamp: str | None, nonce: str | None, signature: str | None) -> None:
    """Any missing or empty header is missing_headers, before anything else is looked at."""
    assert _code(timestamp, nonce, signature) == "missing_headers"


@pytest.mark.parametrize("timestamp", ["abc", "1.5", "-5", "1e3", " 1", "١٢٣"])
def test_timestamp_not_decimal(timestamp: str) -> None:
    """A timestamp that is not a plain decimal integer is invalid_timestamp."""
    assert _code(timestamp) == "invalid_timestamp"


@pytest.mark.parametrize("offset", [SKEW + 1, -SKEW - 1, 10**12])
def test_timestamp_outside_skew(offset: int) -> None:
    """Past the skew either side is timestamp_out_of_range."""
    assert _code(str(NOW + offset)) == "timestamp_out_of_range"


@pytest.mark.parametrize("timestamp", ["9" * 5000, "1" * 30, "0" * 5000 + str(NOW + SKEW * 2)])
def test_timestamp_of_many_digits_is_out_of_range(timestamp: str) -> None:
    """A timestamp too long for any clock is timestamp_out_of_range, not an int() overflow (a 500)."""
    assert _code(timestamp) == "timestamp_out_of_range"


@pytest.mark.parametrize("zeros", [6, 5000])
def test_zero_padded_timestamp_is_read_as_its_value(zeros: int) -> None:
    """Leading zeros, however many, do not make a timestamp inside the skew unreadable."""
    padded = "0" * zeros + str(NOW)
    assert check_headers(padded, "n", "s", NOW, SKEW).timestamp == padded


@pytest.mark.parametrize("offset", [SKEW, -SKEW, 0])
def test_timestamp_inside_skew(offset: int) -> None:
    """Up to the skew either side is accepted."""
    assert check_headers(str(NOW + offset), "n", "s", NOW, SKEW).timestamp == str(NOW + offset)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_nonce_remembered_for_its_window() -> None:
    """A nonce stays known for the whole window and is forgotten only after it."""
    clock = FakeClock()
    cache = NonceCache(capacity=10, ttl_ms=120_000, clock=clock)
    cache.remember("a")
    clock.now += 119.999
    assert cache.seen("a")
    clock.now += 0.002
    assert not cache.seen("a")
    assert len(cache) == 0


def test_full_cache_refuses_instead_of_evicting() -> None:
    """When every entry is unexpired the cache answers 503 replay_cache_full and keeps them all."""
    clock = FakeClock()
    cache = NonceCache(capacity=3, ttl_ms=1000, clock=clock)
    for nonce in "abc":
        cache.remember(nonce)
    with pytest.raises(ApiError) as caught:
        cache.remember("d")
    assert (caught.value.status, caught.value.code, caught.value.retryable) == (503, "replay_cache_full", True)
    assert all(cache.seen(nonce) for nonce in "abc")
    clock.now += 1.001
    cache.remember("d")
    assert cache.seen("d") and not cache.seen("a")


def test_expired_entries_make_room() -> None:
    """Expired entries leave first, in the order they came, so a full cache recovers as time passes."""
    clock = FakeClock()
    cache = NonceCache(capacity=2, ttl_ms=1000, clock=clock)
    cache.remember("a")
    clock.now += 0.5
    cache.remember("b")
    clock.now += 0.6
    cache.remember("c")
    assert not cache.seen("a") and cache.seen("b") and cache.seen("c")
