"""A job's events over SSE: where a reconnecting subscriber resumes, and the frames it is sent."""

from __future__ import annotations

from collections.abc import AsyncGenerator

from ..errors import validation_error
from ..protocol import sse
from .manager import Job


def parse_last_event_id(value: str | None) -> int:
    """The id of the last event a reconnecting subscriber saw; 0 (everything) when absent."""
    if value is None or value == "":
        return 0
    if not value.isdigit():
        raise validation_error("Last-Event-ID", "must be the id of a job event")
    return int(value)


def resume_point(after: int, last_seq: int) -> int:
    """Where a subscriber resumes. An id beyond the newest event was never sent by this job: it
    resumes from the newest event (of an ended job, its final ``job_update``), not after it, so that
    it still learns the job's state instead of a silent end or a wait for ids to catch up."""
    return max(0, last_seq - 1) if after > last_seq else after


async def frames(job: Job, after: int, ping_seconds: float) -> AsyncGenerator[sse.Frame, None]:
    """The job's events after ``after`` (a ``dropped`` frame first for those no longer held), live
    ones as they happen, ``: ping`` while quiet; ends after the final ``job_update``."""
    cursor = resume_point(after, job.events.last_seq)
    while True:
        missed, events = job.events.after(cursor)
        if missed:
            yield sse.frame({"type": "dropped", "dropped": missed})
        for event in events:
            yield sse.encoded(event.data, str(event.seq))
            cursor = event.seq
        if job.ended and cursor >= job.events.last_seq:
            return
        if not await job.wait_beyond(cursor, ping_seconds):
            yield sse.ping()
