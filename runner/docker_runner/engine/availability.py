"""Whether the engine is there: after it went away, calls answer 503 at once instead of waiting.

A daemon that restarts first refuses connections, then (while it restores its state, seconds
here) accepts them and does not answer: every call would hang until its timeout. So once a call
failed to reach the engine, the engine is *away*: calls are refused at once with 503
``docker_unavailable`` (retryable), and at most one bounded probe at a time (a ping with a short
timeout, no more often than ``probe_interval_seconds``) looks for its return. The first probe
that succeeds makes it *there* again.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

from ..errors import ApiError, docker_unavailable

PROBE_TIMEOUT_SECONDS = 1.5
PROBE_INTERVAL_SECONDS = 0.2


class Availability:
    def __init__(
        self,
        probe: Callable[[], None],
        probe_interval_seconds: float = PROBE_INTERVAL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._probe = probe
        self._interval = probe_interval_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._away: str | None = None  # why, while the engine is away
        self._probing = False
        self._last_probe = -math.inf

    @property
    def away(self) -> bool:
        return self._away is not None

    def lost(self, error: ApiError) -> None:
        """A call could not reach the engine."""
        self._away = _reason(error)

    def check(self) -> None:
        """Return when the engine is there (or a probe finds it back now); else 503 at once."""
        reason = self._away
        if reason is None:
            return
        with self._lock:
            if self._probing or self._clock() - self._last_probe < self._interval:
                raise _still_away(reason)
            self._probing = True
            self._last_probe = self._clock()
        try:
            self.probe()
        finally:
            with self._lock:
                self._probing = False

    def probe(self) -> None:
        """A bounded ping: the engine is there afterwards, or away (and this raises 503)."""
        try:
            self._probe()
        except ApiError as error:
            self._away = _reason(error)
            raise _still_away(self._away) from error
        except Exception as exc:  # a probe's failure of any sort: the engine does not answer
            self._away = str(exc) or type(exc).__name__
            raise _still_away(self._away) from exc
        self._away = None


def _reason(error: ApiError) -> str:
    return error.message.removeprefix(docker_unavailable("").message)


def _still_away(reason: str) -> ApiError:
    return docker_unavailable(f"the engine is away ({reason}); retry shortly")
