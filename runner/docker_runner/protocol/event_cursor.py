"""Where a subscriber is in the engine's event stream, exactly (pure).

The engine does not publish its events in ``timeNano`` order: it stamps an event's time before it
takes its lock and publishes it after, so under load an event may arrive after a younger one (a
few milliseconds here). A resume that dropped everything at or below the last time delivered could
drop an event still on its way, or deliver one twice. So the position (the SSE ``id``) carries the
latest time delivered, ``T``, and a short digest of every event delivered within the reorder
window below it. A resume asks the engine for everything since ``T - window`` and drops exactly
the events whose digest it carries; an event in the window that it does not carry was never
delivered, and is.

The id is ``T`` in nanoseconds, how far below it the digests reach (nanoseconds: the window, or
less when more events than ``MAX_DIGESTS`` fell into it), and the digests, eight hex digits each,
back to back: ``1767225600123456789.1000000000.1f2e3d4c5b6a7988``. An id of digits alone (an older
runner's, or one a client made of a ``timeNano``) resumes after ``T``: nothing at or below it again.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import deque
from dataclasses import dataclass
from typing import Any

REORDER_WINDOW_NS = 1_000_000_000
DIGEST_HEX = 8
MAX_DIGESTS = 512  # an id stays a few KiB, whatever the event rate: the oldest of the window go first


def digest(event: dict[str, Any]) -> str:
    """A short fingerprint of one event, the same wherever the engine sends it from (live or history)."""
    canonical = json.dumps(event, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()[:DIGEST_HEX]


@dataclass(frozen=True)
class Position:
    time_nano: int
    reach_ns: int = 0  # the digests cover (time_nano - reach_ns, time_nano]; at or below: all delivered
    seen: tuple[str, ...] = ()

    def encode(self) -> str:
        if not self.reach_ns:
            return str(self.time_nano)
        return f"{self.time_nano}.{self.reach_ns}.{''.join(self.seen)}"

    @classmethod
    def parse(cls, value: str) -> Position:
        """ValueError when ``value`` is not an id this runner gave out (or a bare ``timeNano``)."""
        parts = value.split(".")
        numbers = parts[:2]
        if len(parts) not in (1, 3) or not all(n.isascii() and n.isdigit() and len(n) <= 20 for n in numbers):
            raise ValueError("must be the id of an event")
        if len(parts) == 1:
            return cls(int(parts[0]))
        digests = parts[2]
        if len(digests) % DIGEST_HEX or any(char not in "0123456789abcdef" for char in digests):
            raise ValueError("must be the id of an event")
        seen = tuple(digests[i : i + DIGEST_HEX] for i in range(0, len(digests), DIGEST_HEX))
        return cls(int(parts[0]), int(parts[1]), seen)

    @property
    def floor(self) -> int:
        """Every event at or below this time counts as delivered."""
        return self.time_nano - self.reach_ns


class EventCursor:
    """Decides, event by event, what a subscription delivers, and gives the id after each one."""

    def __init__(self, resume: Position | None, window_ns: int = REORDER_WINDOW_NS) -> None:
        self._window = window_ns
        self._resume = resume
        self._resume_seen = frozenset(resume.seen) if resume is not None else frozenset()
        self._latest = resume.time_nano if resume is not None else -math.inf
        self._floor = resume.floor if resume is not None else -math.inf  # everything at or below: delivered
        # (time, digest) of what was delivered above the floor; the resume's own times are unknown
        # (at most its T): kept as T, which keeps them a little longer than needed, never shorter
        self._recent: deque[tuple[int, str]] = deque()
        if resume is not None:
            self._recent.extend((resume.time_nano, seen) for seen in resume.seen)

    def since(self) -> str | None:
        """The engine's ``since`` of a resume: far enough back for what may still have been on its way."""
        if self._resume is None:
            return None
        start = max(self._resume.floor, 0)
        return f"{start // 1_000_000_000}.{start % 1_000_000_000:09d}"

    def admit(self, event: dict[str, Any]) -> bool:
        """Deliver ``event``? It is remembered as delivered when it is."""
        time_nano = event.get("timeNano")
        if not isinstance(time_nano, int) or isinstance(time_nano, bool):
            return True  # not the engine's usual event: nothing to place it by
        event_digest = digest(event)
        if time_nano <= self._floor or (time_nano <= self._resume_time() and event_digest in self._resume_seen):
            return False
        self._remember(time_nano, event_digest)
        return True

    def _resume_time(self) -> float:
        return self._resume.time_nano if self._resume is not None else -math.inf

    def _remember(self, time_nano: int, event_digest: str) -> None:
        self._latest = max(self._latest, time_nano)
        self._recent.append((time_nano, event_digest))
        self._floor = max(self._floor, self._latest - self._window)
        self._recent = deque(item for item in self._recent if item[0] > self._floor)
        while len(self._recent) > MAX_DIGESTS:
            dropped_time, _ = self._recent.popleft()
            self._floor = max(self._floor, dropped_time)  # what the id can no longer tell apart
        self._recent = deque(item for item in self._recent if item[0] > self._floor)

    def event_id(self) -> str | None:
        """The id of the position after the last event admitted (None before any)."""
        if self._latest == -math.inf:
            return None
        latest = int(self._latest)
        reach = max(1, latest - int(self._floor)) if self._floor != -math.inf else self._window
        return Position(latest, reach, tuple(seen for _, seen in self._recent)).encode()
