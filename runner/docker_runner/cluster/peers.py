"""The other runners of the cluster: where they are (``DOCKER_RUNNER_PEERS``) and which Swarm node
each one serves (its own ``GET /v1/cluster/self``), and the signed requests between runners.

``DOCKER_RUNNER_PEERS`` is a DNS name (``tasks.docker-runner``, optionally ``name:port``) whose
addresses are the peers, on this runner's own port unless a port is given; or a comma-separated
list of URLs (tests). The map from node id to runner is learnt by asking each peer, kept for
``MAP_TTL_SECONDS``, and learnt again at once when a node is asked for that it does not know.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from docker_runner_client._signing import body_hash, canonical_json_bytes, sign, signing_payload

from ..errors import ApiError, Kind, passed_through

MAP_TTL_SECONDS = 5.0
HEARTBEAT_SECONDS = 0.5  # each peer's /v1/ready is asked this often
LOST_AFTER_SECONDS = 1.5  # a peer that has not answered for this long is lost (its requests: 503 at once)
SIGNED_HEADERS = ("x-dr-timestamp", "x-dr-nonce", "x-dr-signature")
FORWARDED_HEADER = "x-dr-forwarded"  # a request one runner passed to another: answered where it lands


@dataclass(frozen=True)
class Peer:
    url: str
    node_id: str
    hostname: str
    role: str  # "manager" or "worker"


def node_unavailable(node_id: str, why: str) -> ApiError:
    return ApiError(
        Kind.UNAVAILABLE,
        "node_unavailable",
        f"The runner of node {node_id} does not answer ({why}); retry shortly",
        retryable=True,
        details={"node": node_id},
    )


def signed_headers(secret: str, method: str, target: str, body_digest: str) -> dict[str, str]:
    """Fresh signature headers for a request between runners: a forwarded nonce is never a replay."""
    timestamp, nonce = str(int(time.time() * 1000)), str(uuid.uuid4())
    payload = signing_payload(method, target, timestamp, nonce, body_digest)
    return {"x-dr-timestamp": timestamp, "x-dr-nonce": nonce, "x-dr-signature": sign(secret, payload)}


def parse_peer_spec(spec: str | None) -> tuple[list[str], tuple[str, int] | None]:
    """(URLs given as such, (DNS name, port or 0) to resolve): one of the two is empty."""
    if not spec:
        return [], None
    if "://" in spec:
        return [part.strip().rstrip("/") for part in spec.split(",") if part.strip()], None
    host, _, port = spec.partition(":")
    return [], (host, int(port) if port.isdigit() else 0)


class Peers:
    def __init__(self, spec: str | None, own_port: int, secret: str, timeout_seconds: float) -> None:
        self._urls, self._dns = parse_peer_spec(spec)
        self._own_port = own_port
        self._secret = secret
        self._timeout = timeout_seconds
        self.client = httpx.AsyncClient(timeout=httpx.Timeout(None, connect=timeout_seconds))
        self._map: dict[str, Peer] = {}
        self._mapped_at = -MAP_TTL_SECONDS
        self._lock = asyncio.Lock()
        self._answered: dict[str, float] = {}  # node id -> when its runner last answered /v1/ready
        self._engine_ok: dict[str, bool] = {}  # node id -> its engine answered too (200)

    @property
    def secret(self) -> str:
        return self._secret

    async def urls(self) -> list[str]:
        if self._dns is None:
            return list(self._urls)
        host, port = self._dns
        port = port or self._own_port
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError:
            return []
        addresses = sorted({str(info[4][0]) for info in infos})
        return [f"http://[{a}]:{port}" if ":" in a else f"http://{a}:{port}" for a in addresses]

    async def get_json(self, url: str, target: str, seconds: float | None = None) -> Any:
        """A signed GET to a peer; its JSON answer (ApiError with the peer's envelope on an error)."""
        headers = signed_headers(self._secret, "GET", target, body_hash(b""))
        headers[FORWARDED_HEADER] = "1"
        try:
            response = await self.client.get(url + target, headers=headers, timeout=seconds or self._timeout)
        except httpx.HTTPError as exc:
            raise self._unreachable(url, exc) from exc
        if response.is_error:
            raise peer_error(response)
        return response.json()

    async def post_json(self, url: str, target: str, payload: Mapping[str, Any], seconds: float | None = None) -> Any:
        """A signed POST of JSON to a peer; its answer (ApiError with the peer's envelope on an error).
        ``seconds``: for work that takes longer than a look (a placement, a removal that waits)."""
        body = canonical_json_bytes(payload)
        headers = signed_headers(self._secret, "POST", target, body_hash(body))
        headers |= {FORWARDED_HEADER: "1", "content-type": "application/json"}
        try:
            response = await self.client.post(
                url + target, content=body, headers=headers, timeout=seconds or self._timeout
            )
        except httpx.HTTPError as exc:
            raise self._unreachable(url, exc) from exc
        if response.is_error:
            raise peer_error(response)
        return response.json() if response.content else None

    def _unreachable(self, url: str, exc: httpx.HTTPError) -> ApiError:
        """A runner that did not answer in time (or at all): retryable, naming its node when known."""
        node = next((p.node_id for p in self._map.values() if p.url == url), url)
        return node_unavailable(node, type(exc).__name__)

    async def _learn(self) -> None:
        found: dict[str, Peer] = {}

        async def ask(url: str) -> None:
            try:
                answer = await self.get_json(url, "/v1/cluster/self")
            except (httpx.HTTPError, ApiError, ValueError):
                return  # not reachable now: it is not in the map until it answers
            found[str(answer["nodeId"])] = Peer(
                url, str(answer["nodeId"]), str(answer["hostname"]), str(answer["role"])
            )

        urls = await self.urls()
        await asyncio.gather(*(ask(url) for url in urls))
        # a runner that did not answer now (busy, its engine slow) keeps its place while its URL is
        # still a peer's: whether it is well is the heartbeat's to say, not the map's
        answered_urls = {peer.url for peer in found.values()}
        for node_id, peer in self._map.items():
            if node_id not in found and peer.url in urls and peer.url not in answered_urls:
                found[node_id] = peer
        self._map = found
        self._mapped_at = time.monotonic()

    async def known(self, refresh: bool = False) -> Mapping[str, Peer]:
        """Node id -> the runner serving it, as last learnt (again now when stale or asked to)."""
        async with self._lock:
            if refresh or time.monotonic() - self._mapped_at > MAP_TTL_SECONDS:
                await self._learn()
            return dict(self._map)

    async def of_node(self, node_id: str) -> Peer | None:
        peer = (await self.known()).get(node_id)
        if peer is None:
            peer = (await self.known(refresh=True)).get(node_id)
        return peer

    async def a_manager(self, exclude: str | None = None) -> Peer | None:
        """A manager's runner, one that answered the heartbeat first (a lost one only when no other)."""
        peers = [p for p in (await self.known()).values() if p.role == "manager" and p.node_id != exclude]
        if not any(self.healthy(p.node_id) for p in peers):
            peers = [
                p for p in (await self.known(refresh=True)).values() if p.role == "manager" and p.node_id != exclude
            ]
        peers.sort(key=lambda p: not self.healthy(p.node_id))
        return peers[0] if peers else None

    def healthy(self, node_id: str) -> bool:
        """Its runner answered a moment ago, and its engine with it (before any heartbeat: assumed)."""
        answered = self._answered.get(node_id)
        if answered is None:
            return True
        return time.monotonic() - answered < LOST_AFTER_SECONDS and self._engine_ok.get(node_id, False)

    async def heartbeat_forever(self) -> None:
        """Ask every known runner whether it and its engine answer, every HEARTBEAT_SECONDS."""
        while True:
            with contextlib.suppress(Exception):
                peers = await self.known()
                await asyncio.gather(*(self._beat(peer) for peer in peers.values()))
            await asyncio.sleep(HEARTBEAT_SECONDS)

    async def _beat(self, peer: Peer) -> None:
        self._answered.setdefault(peer.node_id, time.monotonic())
        try:
            answer = await self.client.get(peer.url + "/v1/ready", timeout=LOST_AFTER_SECONDS - HEARTBEAT_SECONDS)
        except httpx.HTTPError:
            return
        self._answered[peer.node_id] = time.monotonic()
        self._engine_ok[peer.node_id] = answer.status_code == 200

    async def aclose(self) -> None:
        await self.client.aclose()


def peer_error(response: httpx.Response) -> ApiError:
    """A peer's error answer, as the peer gave it (its status, code and message)."""
    try:
        error = json.loads(response.content)["error"]
        code, message = str(error["code"]), str(error["message"])
        retryable, details = bool(error.get("retryable")), dict(error.get("details") or {})
    except (ValueError, KeyError, TypeError):
        code, message, retryable, details = "peer_error", response.text[:200], response.status_code >= 500, {}
    answer = passed_through(response.status_code, code, message)
    answer.retryable, answer.details = retryable, details
    return answer
