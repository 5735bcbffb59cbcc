"""Reading the runner's SSE frames into typed objects (pure)."""

from __future__ import annotations

import base64
import json
from typing import Any, Literal

from httpx_sse import ServerSentEvent

from ._exceptions import StreamError
from ._models import DockerEvent, Job, JobEvent, JobEventsDropped, JobLog, JobMessage, JobUpdate, LogChunk


def _payload(message: ServerSentEvent) -> dict[str, Any] | None:
    if not message.data:
        return None  # a comment-only frame (": ping") or an empty one
    payload = json.loads(message.data)
    if not isinstance(payload, dict):
        return None
    if payload.get("type") == "error":
        raise StreamError(str(payload.get("message") or "the stream failed"))
    return payload


def docker_event(message: ServerSentEvent) -> DockerEvent | None:
    payload = _payload(message)
    if payload is None or payload.get("type") != "event":
        return None
    return DockerEvent.from_json(payload.get("event") or {}, message.id or None)


def log_chunk(message: ServerSentEvent) -> LogChunk | Literal["end"] | None:
    """A chunk, ``"end"`` when the read is complete, None for anything else (pings)."""
    payload = _payload(message)
    if payload is None:
        return None
    if payload.get("type") == "end":
        return "end"
    if payload.get("type") != "chunk":
        return None
    data = base64.b64decode(str(payload.get("data") or ""))
    return LogChunk(stream="stderr", data=data) if payload.get("stream") == "stderr" else LogChunk("stdout", data)


def job_event(message: ServerSentEvent) -> JobEvent | None:
    """A job's event by its ``type``; None for pings and types this client does not know."""
    payload = _payload(message)
    if payload is None:
        return None
    event_id = int(message.id) if message.id and message.id.isdigit() else None
    kind = payload.get("type")
    if kind == "message" and isinstance(payload.get("message"), dict):
        return JobMessage(payload["message"], event_id)
    if kind == "log":
        stream: Literal["stdout", "stderr"] = "stderr" if payload.get("stream") == "stderr" else "stdout"
        return JobLog(stream, str(payload.get("line", "")), event_id)
    if kind == "job_update":
        return JobUpdate(Job.from_json(payload), event_id)
    if kind == "dropped":
        return JobEventsDropped(int(payload.get("dropped", 0)))
    return None
