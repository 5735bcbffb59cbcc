"""Authentication over real HTTP: every 401 code, replays, skew, open routes (docs/protocol.md 1)."""

from __future__ import annotations

import time
import uuid

import httpx
import pytest

from docker_runner_client._signing import canonical_json_bytes, sign_headers
from tests.support.server import TEST_SECRET, RunningServer
from tests.support.signed import error_of, signed_request

pytestmark = pytest.mark.docker

INSPECT = "/v1/containers/inspect?containerId=does-not-exist-xyz"


def test_open_routes_need_no_signature(runner: RunningServer) -> None:
    """health and ready answer without headers."""
    assert httpx.get(runner.url + "/v1/health").json() == {"status": "ok"}
    assert httpx.get(runner.url + "/v1/ready").json() == {"status": "ready"}


def test_missing_headers(runner: RunningServer) -> None:
    response = httpx.get(runner.url + INSPECT)
    assert response.status_code == 401
    assert error_of(response)["code"] == "missing_headers"


def test_invalid_timestamp(runner: RunningServer) -> None:
    headers = {"x-dr-timestamp": "yesterday", "x-dr-nonce": "n", "x-dr-signature": "s"}
    response = httpx.get(runner.url + INSPECT, headers=headers)
    assert (response.status_code, error_of(response)["code"]) == (401, "invalid_timestamp")


@pytest.mark.parametrize("offset_ms", [-61_000, 61_000])
def test_timestamp_out_of_range(runner: RunningServer, offset_ms: int) -> None:
    """A correctly signed request 61 s off either side is refused."""
    response = signed_request(runner.url, "GET", INSPECT, timestamp_ms=int(time.time() * 1000) + offset_ms)
    assert (response.status_code, error_of(response)["code"]) == (401, "timestamp_out_of_range")


@pytest.mark.parametrize("offset_ms", [-55_000, 55_000])
def test_skew_inside_the_window_is_accepted(runner: RunningServer, offset_ms: int) -> None:
    """A request 55 s off either side passes auth (and reaches the engine: 404 for a missing container)."""
    response = signed_request(runner.url, "GET", INSPECT, timestamp_ms=int(time.time() * 1000) + offset_ms)
    assert (response.status_code, error_of(response)["code"]) == (404, "no_such_container")


def test_invalid_signature(runner: RunningServer) -> None:
    response = signed_request(runner.url, "GET", INSPECT, secret="another-secret-of-at-least-32-bytes!!")
    assert (response.status_code, error_of(response)["code"]) == (401, "invalid_signature")


def _headers_for(method: str, target: str, body: bytes = b"") -> dict[str, str]:
    return sign_headers(TEST_SECRET, method, target, body, str(int(time.time() * 1000)), str(uuid.uuid4()))


def test_signature_covers_the_query(runner: RunningServer) -> None:
    """Headers signed for one query do not authorise another."""
    headers = _headers_for("GET", INSPECT)
    response = httpx.get(runner.url + INSPECT + "x", headers=headers)
    assert error_of(response)["code"] == "invalid_signature"


def test_signature_covers_the_method(runner: RunningServer) -> None:
    headers = _headers_for("POST", INSPECT)
    response = httpx.get(runner.url + INSPECT, headers=headers)
    assert error_of(response)["code"] == "invalid_signature"


def test_replayed_request(runner: RunningServer) -> None:
    """The same signed request sent twice is refused the second time with replayed_nonce."""
    nonce = str(uuid.uuid4())
    timestamp = int(time.time() * 1000)
    first = signed_request(runner.url, "GET", INSPECT, nonce=nonce, timestamp_ms=timestamp)
    assert first.status_code == 404
    second = httpx.get(runner.url + INSPECT, headers=dict(first.request.headers))
    assert (second.status_code, error_of(second)["code"]) == (401, "replayed_nonce")


def test_nonce_of_a_failed_signature_is_not_burnt(runner: RunningServer) -> None:
    """A nonce is remembered only once its signature verified: a forged attempt cannot block it."""
    nonce = str(uuid.uuid4())
    forged = signed_request(runner.url, "GET", INSPECT, nonce=nonce, secret="x" * 40)
    assert error_of(forged)["code"] == "invalid_signature"
    genuine = signed_request(runner.url, "GET", INSPECT, nonce=nonce)
    assert genuine.status_code == 404


def test_json_body_signed_over_raw_or_canonical_bytes(runner: RunningServer) -> None:
    """The runner accepts a signature over the canonical form even when the raw bytes differ."""
    body = {"containerId": "does-not-exist-xyz", "force": True}
    raw = b'{ "force": true,\n  "containerId": "does-not-exist-xyz" }'
    headers = _headers_for("POST", "/v1/containers/remove", canonical_json_bytes(body))
    headers["content-type"] = "application/json"
    response = httpx.post(runner.url + "/v1/containers/remove", content=raw, headers=headers)
    assert response.status_code == 204


def test_tampered_body_is_refused(runner: RunningServer) -> None:
    """A signature over one body does not authorise another."""
    headers = _headers_for("POST", "/v1/containers/remove", b'{"containerId":"a"}')
    headers["content-type"] = "application/json"
    tampered = httpx.post(runner.url + "/v1/containers/remove", content=b'{"containerId":"b"}', headers=headers)
    assert error_of(tampered)["code"] == "invalid_signature"
