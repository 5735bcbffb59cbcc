"""Server-sent event frames (docs/protocol.md, section on SSE), as data: each frame a JSON text with
an optional ``id`` for resuming, or a ``: ping`` comment that keeps a quiet stream open. Pure: the
HTTP layer (``http_sse.py``) writes them with ``\\n`` separators only."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Frame:
    data: str | None  # the JSON text of the frame; None for a comment
    id: str | None = None
    comment: str | None = None


def encoded(data: str, event_id: str | None = None) -> Frame:
    """A frame of JSON text encoded already (a job's events are encoded once, when they happen)."""
    return Frame(data=data, id=event_id)


def frame(payload: dict[str, Any], event_id: str | None = None) -> Frame:
    return encoded(json.dumps(payload, separators=(",", ":"), ensure_ascii=False), event_id)


def ping() -> Frame:
    return Frame(data=None, comment="ping")


def error_frame(message: str) -> Frame:
    return frame({"type": "error", "message": message})
