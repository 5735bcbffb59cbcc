"""Raw signed requests, for tests that need to bend what the client does right."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx

from docker_runner_client._signing import canonical_json_bytes, sign_headers
from tests.support.server import TEST_SECRET


def signed_request(
    base_url: str,
    method: str,
    target: str,
    *,
    json_body: Any = None,
    content: bytes | None = None,
    secret: str = TEST_SECRET,
    timestamp_ms: int | None = None,
    nonce: str | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 30,
) -> httpx.Response:
    body = canonical_json_bytes(json_body) if json_body is not None else (content or b"")
    all_headers = sign_headers(
        secret,
        method,
        target,
        body,
        str(int(time.time() * 1000) if timestamp_ms is None else timestamp_ms),
        nonce or str(uuid.uuid4()),
    )
    if json_body is not None:
        all_headers["content-type"] = "application/json"
    all_headers.update(headers or {})
    return httpx.request(method, base_url + target, content=body, headers=all_headers, timeout=timeout)


def error_of(response: httpx.Response) -> dict[str, Any]:
    """The error envelope's inner object, after checking the envelope's shape."""
    body = response.json()
    assert set(body) == {"error"}, body
    error: dict[str, Any] = body["error"]
    assert {"code", "message", "retryable"} <= set(error), error
    return error


@contextlib.contextmanager
def signed_stream(
    base_url: str, target: str, *, headers: dict[str, str] | None = None, timeout: float = 30
) -> Iterator[httpx.Response]:
    """A signed GET whose body is read as it arrives (an SSE stream), closed on leaving."""
    all_headers = sign_headers(TEST_SECRET, "GET", target, b"", str(int(time.time() * 1000)), str(uuid.uuid4()))
    all_headers.update(headers or {})
    with httpx.stream("GET", base_url + target, headers=all_headers, timeout=timeout) as response:
        yield response
