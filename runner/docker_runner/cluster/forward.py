"""A request for a container on another node, passed to that node's runner and answered unchanged.

REST, raw tar both ways and SSE go through one streaming relay: the body is sent as it is read
(a raw upload from its spool), the answer's status, headers and body come back as they arrive (an
endless SSE stream included), and nothing is buffered whole. The WebSocket is bridged frame by
frame, its close code passed on. Every forwarded request is signed afresh with the shared secret,
so a nonce is never reused, and marked as forwarded, so that the runner it lands on answers it
itself. A peer that cannot be reached in time is 503 ``node_unavailable`` (retryable).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
from collections.abc import AsyncIterator, Callable
from typing import IO, Any

import anyio
import httpx
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as connect_websocket
from websockets.exceptions import ConnectionClosed, InvalidStatus

from docker_runner_client._signing import body_hash, encode_body_digest

from ..engine.threads import in_thread
from .peers import FORWARDED_HEADER, Peer, node_unavailable, peer_error, signed_headers

CHUNK_BYTES = 256 * 1024
# request headers a forwarded request keeps (the signature ones are made afresh); Origin was checked here
PASSED_REQUEST_HEADERS = frozenset({b"content-type", b"accept", b"last-event-id", b"x-request-id"})
# answer headers not passed back: they describe the connection between the runners, not the answer
HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "date", "server", "content-length"})

Receive = Callable[[], Any]
Send = Callable[[Any], Any]  # an ASGI send


def _file_digest(body: IO[bytes]) -> str:
    digest = hashlib.sha256()
    body.seek(0)
    while chunk := body.read(CHUNK_BYTES):
        digest.update(chunk)
    body.seek(0)
    return encode_body_digest(digest.digest())


async def _file_chunks(body: IO[bytes], limiter: anyio.CapacityLimiter) -> AsyncIterator[bytes]:
    while chunk := await in_thread(body.read, CHUNK_BYTES, limiter=limiter):
        yield chunk


WATCH_SECONDS = 0.25  # how often an answer in flight looks whether its node is still there


class Forwarder:
    def __init__(
        self,
        client: httpx.AsyncClient,
        secret: str,
        limiter: anyio.CapacityLimiter,
        timeout: float,
        healthy: Callable[[str], bool] = lambda _node: True,
    ) -> None:
        self._client = client
        self._secret = secret
        self._limiter = limiter
        self._timeout = timeout
        self._healthy = healthy

    def _check(self, peer: Peer) -> None:
        if not self._healthy(peer.node_id):
            raise node_unavailable(peer.node_id, "its runner or its engine does not answer")

    async def _watched(self, peer: Peer, work: Any, started: list[bool]) -> None:
        """Run ``work`` until it ends, or until the peer is lost: then 503 node_unavailable when no
        answer has begun (else the answer just ends), never a hang on a runner that stopped answering."""
        task = asyncio.ensure_future(work)
        try:
            while not task.done():
                await asyncio.wait({task}, timeout=WATCH_SECONDS)
                if not task.done() and not self._healthy(peer.node_id):
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
                    if not started[0]:
                        raise node_unavailable(peer.node_id, "it stopped answering")
                    return
            task.result()
        finally:
            if not task.done():
                task.cancel()

    def _headers(self, scope: dict[str, Any], method: str, target: str, digest: str) -> dict[str, str]:
        headers = {
            key.decode("latin-1"): value.decode("latin-1")
            for key, value in scope.get("headers") or []
            if key.lower() in PASSED_REQUEST_HEADERS
        }
        headers.update(signed_headers(self._secret, method, target, digest))
        headers[FORWARDED_HEADER] = "1"
        return headers

    async def http(
        self, peer: Peer, scope: dict[str, Any], target: str, body: bytes | IO[bytes], receive: Receive, send: Send
    ) -> None:
        """Relay one HTTP request to ``peer`` and its answer back, streaming both ways."""
        method = str(scope.get("method") or "GET")
        if isinstance(body, bytes):
            digest, content = body_hash(body), body
        else:
            digest = await in_thread(_file_digest, body, limiter=self._limiter)
            content = _file_chunks(body, self._limiter)  # type: ignore[assignment]
        self._check(peer)
        request = self._client.build_request(
            method, peer.url + target, headers=self._headers(scope, method, target, digest), content=content
        )
        started = [False]
        await self._watched(peer, self._exchange(peer, request, receive, send, started), started)

    async def _exchange(
        self, peer: Peer, request: httpx.Request, receive: Receive, send: Send, started: list[bool]
    ) -> None:
        try:
            response = await self._client.send(request, stream=True)
        except httpx.TransportError as exc:
            raise node_unavailable(peer.node_id, type(exc).__name__) from exc
        try:
            if response.status_code == 503:
                await _unavailable_there(peer, response)  # its engine is away: the node is
            started[0] = True
            await _relay_answer(response, receive, send)
        finally:
            await response.aclose()

    async def json(
        self, peer: Peer, method: str, target: str, body: bytes | IO[bytes], content_type: str | None
    ) -> Any:
        """A request to ``peer`` whose answer is small JSON (a run's): the answer, or the peer's error."""
        if isinstance(body, bytes):
            digest, content = body_hash(body), body
        else:
            digest = await in_thread(_file_digest, body, limiter=self._limiter)
            content = _file_chunks(body, self._limiter)  # type: ignore[assignment]
        self._check(peer)
        headers = self._headers({}, method, target, digest)
        if content_type:
            headers["content-type"] = content_type
        try:
            response = await self._client.request(method, peer.url + target, headers=headers, content=content)
        except httpx.TransportError as exc:
            raise node_unavailable(peer.node_id, type(exc).__name__) from exc
        if response.status_code == 503:
            await _unavailable_there(peer, response)
        if response.is_error:
            raise peer_error(response)
        return response.json()

    async def websocket(
        self,
        peer: Peer,
        scope: dict[str, Any],
        target: str,
        receive: Receive,
        send: Send,
        on_exec: Callable[[str, str], None] | None = None,
    ) -> None:
        """Bridge a WebSocket to ``peer``: a refusal there is the refusal here, then frames both ways.
        ``on_exec(exec id, node)`` learns the session's exec from its ``ready`` frame (for resizes)."""
        self._check(peer)
        url = "ws" + peer.url.removeprefix("http") + target
        headers = self._headers(scope, "GET", target, body_hash(b""))
        try:
            upstream = await connect_websocket(
                url, additional_headers=headers, open_timeout=self._timeout, max_size=None
            )
        except InvalidStatus as refused:
            await _refuse(scope, send, refused.response.status_code, bytes(refused.response.body or b""))
            return
        except (OSError, TimeoutError) as exc:
            raise node_unavailable(peer.node_id, type(exc).__name__) from exc
        async with upstream:
            await send({"type": "websocket.accept"})
            await _bridge(upstream, receive, send, lambda exec_id: on_exec and on_exec(exec_id, peer.node_id))


async def _unavailable_there(peer: Peer, response: httpx.Response) -> None:
    """A peer whose engine does not answer says docker_unavailable: to this client, its node is unavailable."""
    body = await response.aread()
    try:
        code = json.loads(body)["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return
    if code == "docker_unavailable":
        raise node_unavailable(peer.node_id, "its engine does not answer")


async def _relay_answer(response: httpx.Response, receive: Receive, send: Send) -> None:
    headers = [
        (key.encode("latin-1"), value.encode("latin-1"))
        for key, value in response.headers.multi_items()
        if key.lower() not in HOP_BY_HOP
    ]
    await send({"type": "http.response.start", "status": response.status_code, "headers": headers})
    if response.is_stream_consumed:  # read already (an error answer, looked at)
        await send({"type": "http.response.body", "body": response.content, "more_body": False})
        return
    async with anyio.create_task_group() as group:
        group.start_soon(_cancel_when_client_leaves, receive, group.cancel_scope)
        # each read as it comes: a chunk size would hold small frames (SSE) until it filled
        async for chunk in response.aiter_raw():
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        group.cancel_scope.cancel()


async def _cancel_when_client_leaves(receive: Receive, scope: anyio.CancelScope) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            scope.cancel()  # the peer's stream is closed with the response: its exec killed, its slot freed
            return


async def _refuse(scope: dict[str, Any], send: Send, status: int, body: bytes) -> None:
    if "websocket.http.response" in (scope.get("extensions") or {}):
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "websocket.http.response.start", "status": status, "headers": headers})
        await send({"type": "websocket.http.response.body", "body": body, "more_body": False})
    else:
        await send({"type": "websocket.close", "code": 1008})


def _exec_of_ready(data: str) -> str | None:
    if '"ready"' not in data[:64]:
        return None
    try:
        frame = json.loads(data)
    except ValueError:
        return None
    return str(frame["execId"]) if isinstance(frame, dict) and frame.get("type") == "ready" else None


async def _bridge(upstream: ClientConnection, receive: Receive, send: Send, on_exec: Callable[[str], Any]) -> None:
    """Frames both ways until either side closes; the other side is then closed with its code."""
    async with anyio.create_task_group() as group:

        async def client_to_peer() -> None:
            while True:
                message = await receive()
                if message["type"] == "websocket.disconnect":
                    await upstream.close()
                    group.cancel_scope.cancel()
                    return
                data = message.get("text") if message.get("text") is not None else message.get("bytes")
                if data is not None:
                    with contextlib.suppress(ConnectionClosed):
                        await upstream.send(data)

        async def peer_to_client() -> None:
            learnt = False
            try:
                async for data in upstream:
                    key = "text" if isinstance(data, str) else "bytes"
                    if not learnt and isinstance(data, str) and (exec_id := _exec_of_ready(data)) is not None:
                        on_exec(exec_id)
                        learnt = True
                    await send({"type": "websocket.send", key: data})
            except ConnectionClosed:
                pass
            code = upstream.close_code or 1000
            with contextlib.suppress(Exception):
                await send({"type": "websocket.close", "code": code, "reason": upstream.close_reason or ""})
            group.cancel_scope.cancel()

        group.start_soon(client_to_peer)
        group.start_soon(peer_to_client)


async def wait_or_unavailable(coroutine: Any, peer: Peer, seconds: float) -> Any:
    """A short call to a peer, bounded: past ``seconds`` it is 503 node_unavailable, never a hang."""
    try:
        return await asyncio.wait_for(coroutine, seconds)
    except (TimeoutError, httpx.TransportError) as exc:
        raise node_unavailable(peer.node_id, type(exc).__name__) from exc
