"""HMAC request authentication (docs/protocol.md, Authentication), the pure part: the header checks
in their order, the signature over any accepted form of the body, and the nonce cache that
refuses replays. The HTTP middleware (``http_auth.py``) applies them to every request.

The signing payload and canonical JSON are the client's own (``docker_runner_client._signing``):
one implementation signs and verifies, so the two can never disagree.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from docker_runner_client._signing import body_hash, canonical_json_bytes, signature_matches, signing_payload

from ..errors import ApiError, Kind


def auth_error(code: str, message: str) -> ApiError:
    return ApiError(Kind.UNAUTHORIZED, code, message)


class NonceCache:
    """Nonces accepted inside the replay window. Entries leave only once expired; when full of
    unexpired ones the cache refuses (503) rather than forget one and reopen a replay window."""

    def __init__(self, capacity: int, ttl_ms: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._capacity = capacity
        self._ttl_seconds = ttl_ms / 1000
        self._clock = clock
        self._expiry: OrderedDict[str, float] = OrderedDict()  # insertion order is expiry order

    def __len__(self) -> int:
        return len(self._expiry)

    def _purge(self, now: float) -> None:
        while self._expiry:
            nonce, expires = next(iter(self._expiry.items()))
            if expires > now:
                return
            del self._expiry[nonce]

    def seen(self, nonce: str) -> bool:
        self._purge(self._clock())
        return nonce in self._expiry

    def remember(self, nonce: str) -> None:
        now = self._clock()
        self._purge(now)
        if len(self._expiry) >= self._capacity:
            raise ApiError(
                Kind.UNAVAILABLE,
                "replay_cache_full",
                "Too many requests inside the replay window; retry shortly",
                retryable=True,
            )
        self._expiry[nonce] = now + self._ttl_seconds


@dataclass(frozen=True)
class SignedHeaders:
    timestamp: str
    nonce: str
    signature: str


def check_headers(
    timestamp: str | None, nonce: str | None, signature: str | None, now_ms: int, skew_ms: int
) -> SignedHeaders:
    """Checks 1 to 3 of docs/protocol.md section 1, in order."""
    if not timestamp or not nonce or not signature:
        raise auth_error("missing_headers", "Missing authentication headers")
    if not timestamp.isascii() or not timestamp.isdigit():
        raise auth_error("invalid_timestamp", "x-dr-timestamp is not a decimal integer")
    # any timestamp longer than now's digits plus one is out of range; int() refuses past 4300 digits
    digits = timestamp.lstrip("0") or "0"
    if len(digits) > len(str(now_ms)) + 1 or abs(now_ms - int(digits)) > skew_ms:
        raise auth_error("timestamp_out_of_range", "x-dr-timestamp is outside the allowed clock skew")
    return SignedHeaders(timestamp, nonce, signature)


def _canonical_body_hash(body: bytes) -> str | None:
    try:
        parsed = json.loads(body)
    except (ValueError, RecursionError):
        return None
    try:
        return body_hash(canonical_json_bytes(parsed))
    except (TypeError, UnicodeEncodeError, RecursionError):
        return None


def check_signature(
    secrets: Sequence[str], method: str, target: str, headers: SignedHeaders, body_hashes: Sequence[str]
) -> bool:
    """Does any secret sign any accepted form of the body? Constant time per comparison."""
    matched = False
    for digest in body_hashes:
        payload = signing_payload(method, target, headers.timestamp, headers.nonce, digest)
        for secret in secrets:
            matched |= signature_matches(secret, payload, headers.signature)
    return matched


def body_hashes(body: bytes) -> list[str]:
    """The hashes a signature over ``body`` may cover: its raw bytes, and its canonical JSON form."""
    hashes = [body_hash(body)]
    canonical = _canonical_body_hash(body) if body else None
    if canonical is not None and canonical != hashes[0]:
        hashes.append(canonical)
    return hashes
