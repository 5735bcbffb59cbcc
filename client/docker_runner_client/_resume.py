"""Where a subscription starts again after a drop (pure): the engine events' and a job's events.
Both shells of the client use these, so the resume rules exist once."""

from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import httpx
from httpx_sse import ServerSentEvent

from . import _routes as routes
from ._exceptions import DockerRunnerError, RunnerTransportError, StreamError
from ._models import DockerEvent, JobEvent, JobUpdate
from ._sse import docker_event, job_event

if TYPE_CHECKING:
    from ._client import ClientCore


def _server_time(response: httpx.Response) -> float:
    """When the runner answered, by its own clock (the engine's, near enough), else by ours."""
    date = response.headers.get("date")
    if date:
        try:
            return email.utils.parsedate_to_datetime(date).timestamp()
        except (TypeError, ValueError):
            pass
    return time.time()


class EventsResume:
    """Where a subscription to engine events starts again after a drop (pure).

    After the last event seen, by ``Last-Event-ID``; before any was seen, from the caller's
    ``since``, or else from when the first connection was answered, so that events of the gap are
    delivered and none twice. Without ``until`` a subscription has no end: a stream that ends,
    cleanly or with an error frame, is a drop too."""

    def __init__(
        self, since: str | None, until: str | None, filters: Mapping[str, Any] | None, last_event_id: str | None
    ) -> None:
        self._since = since
        self._until = until
        self._filters = filters
        self._last_event_id = last_event_id
        self._resume_since: str | None = since
        self._connected = False
        self.attempt = 0

    def call(self) -> routes.Call:
        since = self._resume_since if self._connected else self._since
        return routes.events(since, self._until, self._filters, self._last_event_id)

    def connected(self, response: httpx.Response) -> None:
        if self._resume_since is None:
            self._resume_since = str(int(_server_time(response)))
        self._connected = True

    def take(self, message: ServerSentEvent) -> DockerEvent | None:
        """The event of a frame (an error frame raises StreamError); remembers where it stopped."""
        self._last_event_id = message.id or self._last_event_id
        event = docker_event(message)
        if event is not None:
            self.attempt = 0
        return event

    def resumes_after_end(self, reconnect: bool) -> bool:
        return reconnect and self._until is None

    @staticmethod
    def resumes_after(error: DockerRunnerError, reconnect: bool) -> bool:
        return reconnect and (isinstance(error, (RunnerTransportError, StreamError)) or error.retryable)

    def next_delay(self, core: ClientCore) -> float:
        delay = core.reconnect_delay(self.attempt)
        self.attempt += 1
        return delay


class JobEventsResume:
    """Where a job's event stream starts again: after the last event seen (its id), or from the
    job's first event. The stream ends with the job's final ``JobUpdate``; a lost connection is a
    drop (an error answer is final: an unknown job stays unknown)."""

    def __init__(self, job_id: str, last_event_id: int | None) -> None:
        self._job_id = job_id
        self._last_event_id = None if last_event_id is None else str(last_event_id)
        self.finished = False
        self.attempt = 0

    def call(self) -> routes.Call:
        return routes.job_events(self._job_id, self._last_event_id)

    def take(self, message: ServerSentEvent) -> JobEvent | None:
        self._last_event_id = message.id or self._last_event_id
        event = job_event(message)
        if event is not None:
            self.attempt = 0
            self.finished = isinstance(event, JobUpdate) and event.job.ended
        return event

    @staticmethod
    def resumes_after(error: DockerRunnerError, reconnect: bool) -> bool:
        return reconnect and isinstance(error, RunnerTransportError)

    def next_delay(self, core: ClientCore) -> float:
        delay = core.reconnect_delay(self.attempt)
        self.attempt += 1
        return delay
