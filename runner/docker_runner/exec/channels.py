"""The resident command channels of all containers (blocking, thread-safe): an idle channel is
taken for a command and given back after it; a new one is started while the container has fewer
than its cap. Past the runner's cap the channel idle longest (another container's) is let go for
it. Past a container's cap, or where a container cannot hold a channel, the command runs with
``docker exec`` instead (:func:`run_fast` answers None), which is always correct.

A channel is one user's (a ``user`` option gets its own channels). A dead idle channel (its
container restarted, its process killed) is found before use and replaced; one found dead only
when its command was sent, before the command began, lets the command run with docker exec; one
that dies under a command answers ``exec_channel_lost`` (503, retryable).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict

from ..engine.core import APIClient, container_running
from ..engine.sockets import Canceller
from .channel import Channel, NeverStarted, NoChannel
from .run import ExecOutcome, ExecSpec

log = logging.getLogger("docker_runner.exec.channels")

REFUSED_KEPT = 10_000  # containers (and users) remembered as unable to hold a channel

Key = tuple[str, str]  # (container id, user)


class ChannelBook:
    def __init__(self, per_container: int, total: int) -> None:
        self.per_container = per_container
        self.total = total
        self._lock = threading.Lock()
        self._idle: dict[Key, list[Channel]] = {}
        self._per_container: dict[str, int] = {}
        self._refused: OrderedDict[Key, float] = OrderedDict()  # until when (monotonic)
        self.open = 0

    def run_fast(self, api: APIClient, container_id: str, spec: ExecSpec, cancel: Canceller) -> ExecOutcome | None:
        """Run ``spec`` through a channel of ``container_id``; None: run it with docker exec."""
        key = (container_id, spec.user)
        channel = self._take(api, key, cancel)
        if channel is None:
            if not self._reserve(key) and not (self._drop_dead() and self._reserve(key)):
                return None
            try:
                channel = Channel.open(api, container_id, spec.user)
            except NoChannel as refusal:
                self._release(container_id)
                if refusal.remember_seconds > 0 and container_running(api, container_id):
                    log.info("no exec channel in %s (%s): docker exec it is", container_id[:12], refusal)
                    self._refuse(key, refusal.remember_seconds)
                return None
            except BaseException:
                self._release(container_id)
                raise
        reusable = False
        try:
            outcome, reusable = channel.run(api, spec, cancel)
        except NeverStarted as gone:
            log.info("%s: docker exec it is, and a new channel next time", gone)
            return None
        finally:
            self._give_back(key, channel, reusable)
        return outcome

    def _take(self, api: APIClient, key: Key, cancel: Canceller) -> Channel | None:
        """An idle live channel; the dead ones met on the way are dropped."""
        while True:
            with self._lock:
                idle = self._idle.get(key)
                if not idle:
                    return None
                channel = idle.pop()
            try:
                if channel.alive() and channel.responsive(api, cancel):
                    return channel
            except BaseException:
                self._drop(channel)
                raise
            self._drop(channel)
            if cancel.cancelled:  # the client left during the ping: the other idle channels stay
                return None

    def _drop_dead(self) -> bool:
        """Drop the idle channels whose dispatcher has ended (their container gone unseen): any?"""
        with self._lock:
            idle = [(key, channel) for key, channels in self._idle.items() for channel in channels]
        dead = [(key, channel) for key, channel in idle if not channel.alive()]
        removed = []
        with self._lock:
            for key, channel in dead:
                channels = self._idle.get(key, [])
                if channel in channels:  # not taken meanwhile
                    channels.remove(channel)
                    removed.append(channel)
        for channel in removed:
            self._drop(channel)
        return bool(removed)

    def _reserve(self, key: Key) -> bool:
        """A place for one more channel of ``key``; at the runner's cap, the one idle longest is let go
        for it (under the same lock, so that no other command takes the place it frees)."""
        container_id = key[0]
        evicted = None
        with self._lock:
            if self._refused_now(key) or self._per_container.get(container_id, 0) >= self.per_container:
                return False
            if self.open >= self.total:
                oldest = min(
                    (channels[0] for channels in self._idle.values() if channels),  # given back in turn
                    key=lambda channel: channel.idle_since,
                    default=None,
                )
                if oldest is None:
                    return False
                self._idle[(oldest.container_id, oldest.user)].remove(oldest)
                evicted = oldest
            self._per_container[container_id] = self._per_container.get(container_id, 0) + 1
            self.open += 1
        if evicted is not None:
            log.info(
                "exec channel of %s let go for one of %s (the runner's cap)",
                evicted.container_id[:12],
                container_id[:12],
            )
            self._drop(evicted)
        return True

    def _release(self, container_id: str) -> None:
        with self._lock:
            left = self._per_container.get(container_id, 0) - 1
            if left > 0:
                self._per_container[container_id] = left
            else:
                self._per_container.pop(container_id, None)
            self.open -= 1

    def _refused_now(self, key: Key) -> bool:
        """Whether ``key`` was refused and is still believed (the lock held)."""
        until = self._refused.get(key)
        if until is None:
            return False
        if time.monotonic() >= until:
            del self._refused[key]
            return False
        self._refused.move_to_end(key)
        return True

    def _refuse(self, key: Key, seconds: float) -> None:
        with self._lock:
            self._refused[key] = time.monotonic() + seconds
            while len(self._refused) > REFUSED_KEPT:
                self._refused.popitem(last=False)

    def _give_back(self, key: Key, channel: Channel, reusable: bool) -> None:
        if reusable and not channel.closed:
            channel.idle_since = time.monotonic()
            with self._lock:
                self._idle.setdefault(key, []).append(channel)
            return
        self._drop(channel)

    def _drop(self, channel: Channel) -> None:
        channel.close()
        self._release(channel.container_id)

    def open_in(self, container_id: str) -> int:
        """Channels open in the container, idle or running a command."""
        with self._lock:
            return self._per_container.get(container_id, 0)

    def forget(self, container_id: str) -> None:
        """The container is gone: its idle channels are closed, its refusal forgotten."""
        with self._lock:
            keys = [key for key in self._idle if key[0] == container_id]
            channels = [channel for key in keys for channel in self._idle.pop(key)]
            for key in [key for key in self._refused if key[0] == container_id]:
                del self._refused[key]
        for channel in channels:
            self._drop(channel)

    def close_all(self) -> None:
        """Every idle channel closed (the runner stops)."""
        with self._lock:
            channels = [channel for idle in self._idle.values() for channel in idle]
            self._idle.clear()
        for channel in channels:
            self._drop(channel)
