"""Where accepted nonces (and spent tickets) are remembered: in this process, or in Redis, which
every runner of a cluster shares, so that a request accepted by one runner is a replay to all.

Both stores answer two questions: was this key *seen* (the replay check, before the signature),
and *claim* it (after the signature verified: true for the one request that gets it first). In
Redis the claim is ``SET key 1 NX PX ttl``, atomic across runners. A store that cannot answer is
503 ``nonce_store_unavailable`` (retryable): a request is never accepted unchecked.
"""

from __future__ import annotations

from typing import Protocol

import redis.asyncio
import redis.exceptions

from ..errors import ApiError, Kind
from .checks import NonceCache

STORE_TIMEOUT_SECONDS = 1.0


class NonceStore(Protocol):
    async def seen(self, key: str) -> bool: ...

    async def claim(self, key: str) -> bool: ...

    async def aclose(self) -> None: ...


class MemoryNonceStore:
    """This process's own memory (a single runner): the bounded cache of ``auth.NonceCache``."""

    def __init__(self, cache: NonceCache) -> None:
        self.cache = cache

    def __len__(self) -> int:
        return len(self.cache)

    async def seen(self, key: str) -> bool:
        return self.cache.seen(key)

    async def claim(self, key: str) -> bool:
        # no await between the look and the write: atomic on the event loop
        if self.cache.seen(key):
            return False
        self.cache.remember(key)
        return True

    async def aclose(self) -> None:
        return None


def store_unavailable(why: str) -> ApiError:
    return ApiError(
        Kind.UNAVAILABLE,
        "nonce_store_unavailable",
        f"The nonce store does not answer ({why}): replays cannot be refused, so the request is not accepted",
        retryable=True,
    )


class RedisNonceStore:
    """Keys ``<prefix><key>`` in Redis, each kept for ``ttl_ms`` (the replay window, or a ticket's life)."""

    def __init__(self, client: redis.asyncio.Redis, prefix: str, ttl_ms: int) -> None:
        self._client = client
        self._prefix = prefix
        self._ttl_ms = ttl_ms

    async def seen(self, key: str) -> bool:
        try:
            return bool(await self._client.exists(self._prefix + key))
        except (redis.exceptions.RedisError, OSError) as exc:
            raise store_unavailable(type(exc).__name__) from exc

    async def claim(self, key: str) -> bool:
        try:
            return bool(await self._client.set(self._prefix + key, b"1", nx=True, px=self._ttl_ms))
        except (redis.exceptions.RedisError, OSError) as exc:
            raise store_unavailable(type(exc).__name__) from exc

    async def aclose(self) -> None:
        await self._client.aclose()


def redis_client(url: str) -> redis.asyncio.Redis:
    """A client of the store at ``url`` (``redis://host:port/db``, ``unix:///path``); it connects on first use."""
    return redis.asyncio.from_url(
        url,
        socket_timeout=STORE_TIMEOUT_SECONDS,
        socket_connect_timeout=STORE_TIMEOUT_SECONDS,
        retry_on_timeout=False,
    )
