"""The authentication middleware (docs/protocol.md, Authentication): every request not marked open
is verified, HTTP, SSE and WebSocket upgrades alike, with the checks of ``auth.py``. The body is
read only after the headers passed, bounded while it is read, and handed on to the handler.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import IO, Any, Protocol

from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, HTTPRequestEvent, Receive, ReceiveMessage, Scope, Send

from docker_runner_client._signing import (
    NONCE_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    body_hash,
    encode_body_digest,
)

from ..auth.checks import SignedHeaders, auth_error, body_hashes, check_headers, check_signature
from ..auth.nonces import NonceStore
from ..errors import ApiError, Kind, internal_error

OPEN_ROUTE = "open"  # handler opt: no authentication
STREAMED_BODY = "streamed_body"  # handler opt: the body is spooled to disk, not held in memory
TICKETS_ACCEPTED = "tickets"  # handler opt: a browser ticket may stand in for the signed headers
# handler opt: scope -> ApiError | None, the handler's own refusal, checked once the request is
# authenticated (for a ticket, before it is spent on the request)
UPGRADE_PRECHECK = "upgrade_precheck"
SPOOLED_BODY_STATE = "docker_runner.spooled_body"
SPOOL_MEMORY_BYTES = 1024 * 1024


def request_target(scope: Scope) -> str:
    """The path plus raw query exactly as the client sent them."""
    raw_path = scope.get("raw_path") or scope["path"].encode("utf-8")
    target = raw_path.decode("latin-1")
    query = scope.get("query_string") or b""
    return target + "?" + query.decode("latin-1") if query else target


def header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key.lower() == name:
            return value.decode("latin-1")
    return None


async def _body_chunks(receive: Receive, limit: int) -> AsyncIterator[bytes]:
    """The request body as it arrives, refused (413) as soon as it passes ``limit``."""
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ApiError(Kind.INVALID, "client_disconnected", "The client went away while sending the body")
        if message["type"] != "http.request":
            continue
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise ApiError(Kind.TOO_LARGE, "payload_too_large", f"Request body exceeds {limit} bytes")
        yield chunk
        if not message.get("more_body", False):
            return


async def _read_body(receive: Receive, limit: int) -> bytes:
    return b"".join([chunk async for chunk in _body_chunks(receive, limit)])


async def _spool_body(receive: Receive, limit: int, directory: str | None) -> tuple[IO[bytes], str]:
    """Write a streamed body to a temporary file, hashing as it goes; memory stays bounded."""
    spool: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY_BYTES, dir=directory)  # noqa: SIM115
    digest = hashlib.sha256()
    try:
        async for chunk in _body_chunks(receive, limit):
            digest.update(chunk)
            spool.write(chunk)
    except BaseException:
        spool.close()
        raise
    spool.seek(0)
    return spool, encode_body_digest(digest.digest())


def replaying(body: bytes, receive: Receive) -> Receive:
    """A receive that hands the already-read body to the handler, then the real stream (disconnects)."""
    delivered = False

    async def replay() -> ReceiveMessage:
        nonlocal delivered
        if not delivered:
            delivered = True
            event: HTTPRequestEvent = {"type": "http.request", "body": body, "more_body": False}
            return event
        return await receive()

    return replay


async def refuse_upgrade(scope: Scope, send: Send, error: ApiError) -> None:
    """Refuse a WebSocket before accepting it: an HTTP answer with the error envelope where the
    server can send one (so clients see the status and code), a policy-violation close otherwise."""
    if "websocket.http.response" in (scope.get("extensions") or {}):
        body = json.dumps(error.envelope()).encode()
        await send(
            {
                "type": "websocket.http.response.start",
                "status": error.status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "websocket.http.response.body", "body": body, "more_body": False})
    else:
        await send({"type": "websocket.close", "code": 1008, "reason": error.code})


class Redeemer(Protocol):
    async def redeem(self, target_with_ticket: str) -> None: ...


class AuthMiddleware(ASGIMiddleware):
    """Verifies every request that is not marked open: HTTP, SSE and WebSocket upgrades alike."""

    exclude_opt_key = OPEN_ROUTE

    def __init__(
        self,
        secrets: Callable[[], Sequence[str]],
        nonces: NonceStore,
        skew_ms: int,
        max_body_bytes: int,
        max_streamed_bytes: int,
        tickets: Redeemer | None = None,
        on_failure: Callable[[str], None] | None = None,
        spool_dir: str | None = None,
        wall_clock_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    ) -> None:
        self._secrets = secrets
        self._nonces = nonces
        self._skew_ms = skew_ms
        self._max_body_bytes = max_body_bytes
        self._max_streamed_bytes = max_streamed_bytes
        self._tickets = tickets
        self._on_failure = on_failure
        self._spool_dir = spool_dir
        self._now_ms = wall_clock_ms

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        try:
            if scope["type"] != ScopeType.WEBSOCKET:
                await self._handle(scope, receive, send, next_app)
                return
            try:
                await self._authenticate_without_body(scope)
            except ApiError as error:
                await refuse_upgrade(scope, send, error)
                self._count(error)
                return
        except ApiError as error:
            self._count(error)
            raise
        await next_app(scope, receive, send)

    def _count(self, error: ApiError) -> None:
        if error.kind is Kind.UNAUTHORIZED and self._on_failure is not None:
            self._on_failure(error.code)

    def _uses_ticket(self, scope: Scope) -> bool:
        return (
            self._tickets is not None
            and bool(scope["route_handler"].opt.get(TICKETS_ACCEPTED))
            and header(scope, SIGNATURE_HEADER.encode()) is None
            and b"ticket=" in (scope.get("query_string") or b"")
        )

    async def _authenticate_without_body(self, scope: Scope) -> None:
        if self._uses_ticket(scope):
            assert self._tickets is not None
            _precheck(scope)  # before the ticket is redeemed: a refused upgrade leaves it unspent
            await self._tickets.redeem(request_target(scope))
            return
        # a WebSocket upgrade is a GET with an empty body, signed like any other
        await self._verify(
            str(scope.get("method") or "GET"), request_target(scope), self._signed_headers(scope), [body_hash(b"")]
        )
        _precheck(scope)

    def _signed_headers(self, scope: Scope) -> SignedHeaders:
        return check_headers(
            header(scope, TIMESTAMP_HEADER.encode()),
            header(scope, NONCE_HEADER.encode()),
            header(scope, SIGNATURE_HEADER.encode()),
            self._now_ms(),
            self._skew_ms,
        )

    async def _handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        if self._uses_ticket(scope):
            await self._authenticate_without_body(scope)
            await next_app(scope, receive, send)
            return
        headers = self._signed_headers(scope)
        method = str(scope.get("method") or "GET")
        spool: IO[bytes] | None = None
        if scope["route_handler"].opt.get(STREAMED_BODY):
            spool, digest = await _spool_body(receive, self._max_streamed_bytes, self._spool_dir)
            hashes = [digest]
        else:
            body = await _read_body(receive, self._max_body_bytes)
            hashes = body_hashes(body)
            receive = replaying(body, receive)
        try:
            await self._verify(method, request_target(scope), headers, hashes)
            if spool is not None:
                scope.setdefault("state", {})[SPOOLED_BODY_STATE] = spool
            await next_app(scope, receive, send)
        finally:
            if spool is not None:
                spool.close()

    async def _verify(self, method: str, target: str, headers: SignedHeaders, body_hashes: list[str]) -> None:
        # the order of the protocol: a replay is refused before the signature is looked at; the
        # claim after it is atomic in the store, so of two requests racing with one nonce (on two
        # runners, say) exactly one gets through
        if await self._nonces.seen(headers.nonce):
            raise auth_error("replayed_nonce", "This nonce was already used")
        if not check_signature(self._secrets(), method, target, headers, body_hashes):
            raise auth_error("invalid_signature", "Signature does not match")
        if not await self._nonces.claim(headers.nonce):
            raise auth_error("replayed_nonce", "This nonce was already used")


def _precheck(scope: Scope) -> None:
    """The handler's UPGRADE_PRECHECK (a foreign Origin, say), raised as the request's refusal."""
    precheck = scope["route_handler"].opt.get(UPGRADE_PRECHECK)
    refusal = precheck(scope) if precheck is not None else None
    if refusal is not None:
        raise refusal


def spooled_body(scope: Scope) -> IO[bytes]:
    state: dict[str, Any] = scope.get("state", {})
    spool: IO[bytes] | None = state.get(SPOOLED_BODY_STATE)
    if spool is None:
        raise internal_error("streamed body missing")
    return spool
