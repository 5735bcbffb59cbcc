"""One event stream for the whole cluster: every node's engine events, merged, resumable exactly.

A manager's engine reports only its own containers' events; each engine's container events come
from that engine alone. So the merged stream holds one source per node (this node's engine, or
the node's runner asked for its own events only) and, from one manager, Swarm's own service and
node events when the filter asks for them. Each frame says its node:
``{"type": "event", "node": "<nodeId>", "event": {...}}``, and its ``id`` carries every source's
position (``<source>=<position>,...``, a position as ``protocol.event_cursor`` makes it), so a
reconnect, to this runner or another, resumes each source exactly where it was. A node that joins
later gets a source from the time the stream began; a source that breaks off (its node lost) is
opened again, with a growing pause, from its position.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx
from httpx_sse import EventSource

from ..containers import events
from ..engine.core import Engine
from ..engine.streams import chunks_or_pings
from ..errors import validation_error
from ..protocol import sse
from ..protocol.event_cursor import EventCursor, Position
from ..protocol.ndjson import LineSplitter
from .peers import FORWARDED_HEADER, Peer, Peers, signed_headers

log = logging.getLogger("docker_runner.cluster.events")

# Swarm's own objects: every manager reports them, one manager is asked
SWARM_TYPES = ("service", "secret", "config")
NODE_TYPE = "node"
# what one engine reports of its own (every type but Swarm's)
LOCAL_TYPES = ("container", "image", "volume", "network", "plugin", "daemon")
MEMBERSHIP_SECONDS = 2.0
RETRY_SECONDS = (0.2, 2.0)


@dataclass(frozen=True)
class Source:
    key: str  # its name in the merged id: the node id, or node/swarm, node/node
    node_id: str
    filters: dict[str, Any]


def parse_merged_id(value: str | None) -> dict[str, str]:
    """Each source's position, from a merged stream's id; a single node's id applies to every node."""
    if not value:
        return {}
    if "=" not in value:
        Position.parse(value)
        return {"*": value}
    positions = {}
    for part in value.split(","):
        key, equals, position = part.partition("=")
        if not equals or not key or not key.replace("/", "").isalnum():
            raise validation_error("Last-Event-ID", "must be the id of an event this runner sent")
        try:
            Position.parse(position)
        except ValueError:
            raise validation_error("Last-Event-ID", "must be the id of an event this runner sent") from None
        positions[key] = position
    return positions


def merged_id(positions: Mapping[str, str]) -> str:
    return ",".join(f"{key}={position}" for key, position in sorted(positions.items()) if key != "*")


def sources_of(node_id: str, chosen_manager: bool, filters: Mapping[str, Any]) -> list[Source]:
    """The sources one node contributes for ``filters``: its own objects, and, from the one manager
    chosen, Swarm's services and nodes when the filter names them."""
    wanted = filters.get("type")
    types = list(wanted) if isinstance(wanted, list) else None  # None: every type
    found = []
    local = [t for t in (types or LOCAL_TYPES) if t in LOCAL_TYPES]
    if local:
        found.append(Source(node_id, node_id, {**filters, "type": local}))
    if chosen_manager:
        swarm = [t for t in (types or SWARM_TYPES) if t in SWARM_TYPES]
        if swarm:
            found.append(Source(f"{node_id}/swarm", node_id, {**filters, "type": swarm}))
        if types is None or NODE_TYPE in types:
            found.append(Source(f"{node_id}/node", node_id, {"type": [NODE_TYPE]}))
    return found


Item = tuple[str, dict[str, Any], str | None]  # (source key, event, the source's position after it)


class MergedEvents:
    def __init__(
        self,
        peers: Peers,
        engine: Engine,
        local_node: str,
        scope_labels: list[str],
        filters: dict[str, Any],
        since: str | None,
        until: str | None,
        positions: dict[str, str],
    ) -> None:
        self._peers = peers
        self._engine = engine
        self._local = local_node
        self._scope = scope_labels
        self._filters = filters
        self._since = since or f"{time.time():.9f}"  # a node that joins later: from the stream's start
        self._until = until
        self._positions = positions
        self._queue: asyncio.Queue[Item | None] = asyncio.Queue(maxsize=256)
        self._running: dict[str, asyncio.Task[None]] = {}

    async def frames(self, ping_seconds: float) -> AsyncGenerator[sse.Frame, None]:
        watcher = asyncio.ensure_future(self._watch_membership())
        try:
            await self._join(await self._peers.known())
            while True:
                try:
                    item = await asyncio.wait_for(self._queue.get(), ping_seconds)
                except TimeoutError:
                    yield sse.ping()
                    continue
                if item is None:
                    if self._until is not None and not any(not t.done() for t in self._running.values()):
                        return
                    continue
                key, event, position = item
                if position is not None:
                    self._positions[key] = position
                node = key.split("/", 1)[0]
                yield sse.frame({"type": "event", "node": node, "event": event}, merged_id(self._positions))
        finally:
            watcher.cancel()
            for task in self._running.values():
                task.cancel()

    async def _watch_membership(self) -> None:
        while True:
            await asyncio.sleep(MEMBERSHIP_SECONDS)
            with contextlib.suppress(Exception):
                await self._join(await self._peers.known())

    async def _join(self, known: Mapping[str, Peer]) -> None:
        managers = sorted(node for node, peer in known.items() if peer.role == "manager")
        chosen = managers[0] if managers else None
        for node_id, peer in known.items():
            for source in sources_of(node_id, node_id == chosen, self._filters):
                if source.key not in self._running:
                    self._running[source.key] = asyncio.ensure_future(self._feed(source, peer))

    async def _feed(self, source: Source, peer: Peer) -> None:
        """Put the source's events in the queue; open it again (from its position) when it breaks."""
        pause, longest = RETRY_SECONDS
        while True:
            try:
                async for item in self._read(source, peer):
                    await self._queue.put(item)
                    pause = RETRY_SECONDS[0]
                if self._until is not None:
                    return  # the source reached its end
            except Exception as exc:  # a lost node, a runner gone: the others go on
                log.info("events of node %s broke off (%r); resuming", source.node_id, exc)
            finally:
                await self._queue.put(None)
            await asyncio.sleep(pause)
            pause = min(pause * 2, longest)

    def _position(self, key: str) -> str | None:
        return self._positions.get(key) or self._positions.get("*")

    def _read(self, source: Source, peer: Peer) -> AsyncIterator[Item]:
        if source.node_id == self._local:
            return self._read_local(source)
        return self._read_remote(source, peer)

    async def _read_local(self, source: Source) -> AsyncIterator[Item]:
        position = self._position(source.key)
        cursor = EventCursor(Position.parse(position) if position else None)
        wanted = events.with_scope(source.filters, self._scope)
        stream = await events.subscribe(self._engine, self._since, self._until, wanted, cursor)
        splitter = LineSplitter()
        try:
            async for chunk in chunks_or_pings(stream, 3600):
                for line in splitter.feed(chunk or b""):
                    event = _decoded(line)
                    if event is not None and cursor.admit(event):
                        yield source.key, event, cursor.event_id()
            if stream.error is not None:
                raise ConnectionError(f"the engine's event stream failed: {stream.error}")
        finally:
            await stream.aclose()

    async def _read_remote(self, source: Source, peer: Peer) -> AsyncIterator[Item]:
        query = {"filters": base64.b64encode(json.dumps(source.filters).encode()).decode(), "since": self._since}
        if self._until is not None:
            query["until"] = self._until
        target = "/v1/events/sse?" + urlencode(query)
        headers = signed_headers(self._peers.secret, "GET", target, _EMPTY_DIGEST) | {FORWARDED_HEADER: "1"}
        position = self._position(source.key)
        if position:
            headers["last-event-id"] = position
        async with self._peers.client.stream(
            "GET", peer.url + target, headers=headers, timeout=_STREAM_TIMEOUT
        ) as answer:
            if answer.status_code != 200:
                raise ConnectionError(f"the runner of node {peer.node_id} answered {answer.status_code}")
            async for message in EventSource(answer).aiter_sse():
                if not message.data:
                    continue
                payload = json.loads(message.data)
                if payload.get("type") == "error":
                    raise ConnectionError(str(payload.get("message")))
                if payload.get("type") == "event":
                    yield source.key, payload["event"], message.id or None


_EMPTY_DIGEST = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="  # base64(sha256(b""))
_STREAM_TIMEOUT = httpx.Timeout(None, connect=2.0, read=60.0)  # pings every 15 s keep a live stream moving


def _decoded(line: bytes) -> dict[str, Any] | None:
    try:
        event = json.loads(line)
    except ValueError:
        return None
    return event if isinstance(event, dict) else None


def merged_frames(
    peers: Peers,
    engine: Engine,
    local_node: str,
    scope_labels: list[str],
    filters: dict[str, Any],
    since: str | None,
    until: str | None,
    last_event_id: str | None,
    ping_seconds: float,
) -> AsyncGenerator[sse.Frame, None]:
    merged = MergedEvents(
        peers, engine, local_node, scope_labels, filters, since, until, parse_merged_id(last_event_id)
    )
    return merged.frames(ping_seconds)
