"""Cluster mode: any runner answers any request. After authentication, a request for a container on
another node is passed to that node's runner (``cluster.forward``), a placement to a manager's runner
when this node is a worker, and a listing is gathered from every runner. Each route says by its
``opt`` how it is found:

- ``LOCATED_BY``: ``("query" | "body" | "path", name)`` names the container; ``("exec", name)`` an
  exec (in the body); ``("job", name)`` a job (in the path);
- ``ON_A_MANAGER``: the route needs a Swarm manager's engine (placement, Swarm's own views);
- ``GATHERED``: ``key``, the list in the answer that every runner contributes its part of
  (``GATHERED_NEWEST_FIRST``: the field its items are sorted by, newest first);
- ``EVERYWHERE``: every runner does it (an image pulled on every node); answered once all did.

Without the cluster, and for a request another runner already forwarded (``x-dr-forwarded``), the
route's own handler answers, as on a single host.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import IO, Any
from urllib.parse import parse_qsl

from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Receive, Scope, Send

from ..auth.tickets import split_ticket
from ..cluster.cluster import Cluster
from ..cluster.peers import FORWARDED_HEADER, Peer
from ..errors import ApiError
from .middleware import SPOOLED_BODY_STATE, STREAMED_BODY, header, refuse_upgrade, replaying, request_target

log = logging.getLogger("docker_runner.cluster")

LOCATED_BY = "cluster.located_by"
EVERYWHERE_SECONDS = 600.0
EVERYWHERE = "cluster.everywhere"  # done by every runner (an image every node must have): 204 once all did
ON_A_MANAGER = "cluster.on_a_manager"
GATHERED = "cluster.gathered"
GATHERED_NEWEST_FIRST = "cluster.gathered_newest_first"


async def _body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def forwarded_target(scope: Scope) -> str:
    """The request's path and query as the next runner gets it: without the ticket (spent here)."""
    target = request_target(scope)
    split = split_ticket(target)
    return split[0] if split is not None else target


def _reference(scope: Scope, where: str, name: str, body: bytes) -> str | None:
    if where == "query":
        return next((value for key, value in _query(scope) if key == name), None)
    if where == "path":
        in_path = (scope.get("path_params") or {}).get(name)
        return str(in_path) if in_path else None
    try:
        parsed = json.loads(body) if body else {}
    except ValueError:
        return None  # the handler answers the malformed body
    in_body = parsed.get(name) if isinstance(parsed, dict) else None
    return in_body if isinstance(in_body, str) and in_body else None


def _query(scope: Scope) -> list[tuple[str, str]]:
    return parse_qsl((scope.get("query_string") or b"").decode("latin-1"), keep_blank_values=True)


class ForwardingMiddleware(ASGIMiddleware):
    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        cluster: Cluster | None = scope["app"].state.runtime.cluster
        opt = scope["route_handler"].opt
        if cluster is None or header(scope, FORWARDED_HEADER.encode()) or not (opt.keys() & _CLUSTER_OPTS):
            await next_app(scope, receive, send)
            return
        websocket = scope["type"] == ScopeType.WEBSOCKET
        body = b"" if websocket or opt.get(STREAMED_BODY) else await _body(receive)
        try:
            peer = await _peer_for(cluster, scope, opt, body)
            if peer is None and GATHERED in opt and scope["type"] == ScopeType.HTTP:
                await _gather(cluster, scope, str(opt[GATHERED]), opt.get(GATHERED_NEWEST_FIRST), body, send)
                return
            if EVERYWHERE in opt:
                await _everywhere(cluster, scope, body, send)
                return
        except ApiError as error:
            if websocket:
                await refuse_upgrade(scope, send, error)
                return
            raise
        if peer is None:
            await next_app(scope, replaying(body, receive) if not websocket else receive, send)
            return
        await _forward(cluster, peer, scope, body, receive, send)


_CLUSTER_OPTS = frozenset({LOCATED_BY, ON_A_MANAGER, GATHERED, EVERYWHERE})


async def _peer_for(cluster: Cluster, scope: Scope, opt: Any, body: bytes) -> Peer | None:
    """The runner that must answer, when it is another one than this."""
    if ON_A_MANAGER in opt and not (await cluster.local()).manager:
        return await cluster.a_manager()
    located = opt.get(LOCATED_BY)
    if located is None:
        return None
    where, name = located
    reference = _reference(scope, {"exec": "body", "job": "path"}.get(where, where), name, body)
    if not reference:
        return None
    if where == "job":
        if scope["app"].state.runtime.jobs.knows(reference):
            return None
        node = await cluster.node_of_job(reference)
    elif where == "exec":
        node = await cluster.node_of_exec(reference)
    else:
        node = await cluster.locate(reference)
    return None if node is None else await cluster.peer(node)


async def _forward(cluster: Cluster, peer: Peer, scope: Scope, body: bytes, receive: Receive, send: Send) -> None:
    target = forwarded_target(scope)
    if scope["type"] == ScopeType.WEBSOCKET:
        await cluster.forwarder.websocket(peer, dict(scope), target, receive, send, on_exec=cluster.remember_exec)
        return
    spooled: IO[bytes] | None = (scope.get("state") or {}).get(SPOOLED_BODY_STATE)
    await cluster.forwarder.http(peer, dict(scope), target, spooled if spooled is not None else body, receive, send)


async def _gather(cluster: Cluster, scope: Scope, key: str, newest_first: str | None, body: bytes, send: Send) -> None:
    """Every runner's part of a listing, in one answer (a runner that does not answer is left out)."""
    target = forwarded_target(scope)
    method = str(scope.get("method") or "GET")
    payload = json.loads(body) if body else None
    peers = list((await cluster.peers.known()).values())

    async def part(peer: Peer) -> list[Any]:
        try:
            if method == "GET":
                answer = await cluster.peers.get_json(peer.url, target)
            else:
                answer = await cluster.peers.post_json(peer.url, target, payload or {})
        except ApiError as error:
            if error.status < 500:
                raise
            log.warning("node %s left out of %s: %s", peer.node_id, target, error.message)
            return []
        except Exception as exc:  # an unreachable runner: its node's part is missing
            log.warning("node %s left out of %s: %r", peer.node_id, target, exc)
            return []
        return list(answer.get(key) or [])

    parts = await asyncio.gather(*(part(peer) for peer in peers))
    merged = [item for items in parts for item in items]
    if newest_first:
        merged.sort(key=lambda item: item.get(newest_first) or 0, reverse=True)
    content = json.dumps({key: merged}, separators=(",", ":")).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(content)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": content, "more_body": False})


async def _everywhere(cluster: Cluster, scope: Scope, body: bytes, send: Send) -> None:
    """The request done by every runner of the cluster; the first refusal is the answer."""
    target = forwarded_target(scope)
    payload = json.loads(body) if body else {}
    peers = list((await cluster.peers.known()).values())
    # work on every node (an image pulled): as long as it takes there, the client's timeout bounds it
    await asyncio.gather(*(cluster.peers.post_json(peer.url, target, payload, EVERYWHERE_SECONDS) for peer in peers))
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b"", "more_body": False})
