"""Browser tickets (docs/protocol.md 1.1): single-use, short-lived, bound to one path and query.

Browsers cannot set headers on a WebSocket or an EventSource, so a signed-in platform server asks
for a ticket and hands the browser a URL ending in ``ticket=...``. A ticket is signed with
itsdangerous (SHA-256, under the current or the next shared secret), names the exact target it
opens, expires within 60 s and is accepted once.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from itsdangerous import BadSignature, URLSafeSerializer

from ..errors import ApiError, Kind
from .checks import NonceCache
from .nonces import MemoryNonceStore, NonceStore

MAX_TTL_MS = 60_000
DEFAULT_TTL_MS = 30_000
TICKET_PARAMETER = "ticket"
_SALT = "docker-runner.ticket"
TICKETS_KEPT = 100_000  # spent tickets remembered at once, each for a ticket's longest life


def invalid_ticket(why: str) -> ApiError:
    return ApiError(Kind.UNAUTHORIZED, "invalid_ticket", f"Invalid ticket: {why}")


def split_ticket(target: str) -> tuple[str, str] | None:
    """(the target without its ticket, the ticket) when the last query parameter is the ticket."""
    path, question, query = target.partition("?")
    if not question:
        return None
    head, separator, last = query.rpartition("&")
    name, equals, value = last.partition("=")
    if name != TICKET_PARAMETER or not equals or not value:
        return None
    return (path + "?" + head if separator else path), value


class TicketBook:
    def __init__(
        self,
        secrets: Callable[[], Sequence[str]],
        used: NonceStore | None = None,
        clock_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    ) -> None:
        """``used`` remembers the spent tickets (shared by the runners of a cluster); by default, this
        process's memory."""
        self._secrets = secrets
        self._clock_ms = clock_ms
        self._used = used if used is not None else MemoryNonceStore(NonceCache(TICKETS_KEPT, MAX_TTL_MS))

    def _serializer(self) -> URLSafeSerializer:
        # itsdangerous signs with the last key and accepts any: the current secret signs, the next verifies too
        keys = list(reversed(self._secrets()))
        return URLSafeSerializer(keys, salt=_SALT, signer_kwargs={"digest_method": hashlib.sha256})

    def issue(self, target: str, ttl_ms: int = DEFAULT_TTL_MS) -> tuple[str, int]:
        expires_at = self._clock_ms() + ttl_ms
        payload = {"t": target, "n": uuid.uuid4().hex, "e": expires_at}
        return str(self._serializer().dumps(payload)), expires_at

    async def redeem(self, target_with_ticket: str) -> None:
        """Accept the ticket at the end of this target once, or raise 401 invalid_ticket."""
        if not await self._used.claim(await self._unused_nonce(target_with_ticket)):
            raise invalid_ticket("already used")

    async def check(self, target_with_ticket: str) -> None:
        """Raise what :meth:`redeem` would raise, without using the ticket (why a browser was refused)."""
        await self._unused_nonce(target_with_ticket)

    async def _unused_nonce(self, target_with_ticket: str) -> str:
        split = split_ticket(target_with_ticket)
        if split is None:
            raise invalid_ticket("the ticket must be the last query parameter")
        target, ticket = split
        try:
            payload: Any = self._serializer().loads(ticket)
        except BadSignature:
            raise invalid_ticket("bad signature") from None
        if not isinstance(payload, dict) or not {"t", "n", "e"} <= payload.keys():
            raise invalid_ticket("malformed")
        if payload["t"] != target:
            raise invalid_ticket("issued for another path or query")
        if self._clock_ms() > int(payload["e"]):
            raise invalid_ticket("expired")
        nonce = str(payload["n"])
        if await self._used.seen(nonce):
            raise invalid_ticket("already used")
        return nonce
