"""Exact resumes of the engine's event stream, whose events arrive slightly out of time order."""

from __future__ import annotations

import json

import pytest

from docker_runner.protocol.event_cursor import MAX_DIGESTS, REORDER_WINDOW_NS, EventCursor, Position
from docker_runner.protocol.ndjson import LineSplitter

BASE = 1_767_225_600_000_000_000


def _event(n: int, offset_ms: int) -> dict[str, object]:
    return {
        "Type": "container",
        "Action": "start",
        "Actor": {"ID": f"c{n:03d}", "Attributes": {"n": str(n)}},
        "timeNano": BASE + offset_ms * 1_000_000,
    }


# As the engine sent them: stamped before its lock, published after, so #4 and #7 come late.
RECORDED = [_event(1, 0), _event(2, 5), _event(3, 9), _event(5, 12), _event(4, 11), _event(6, 20)]
RECORDED += [_event(8, 30), _event(7, 28), _event(9, 31), _event(10, 40)]


def _chunks(events: list[dict[str, object]], size: int) -> list[bytes]:
    """The engine's ndjson, cut every ``size`` bytes (inside lines and multi-byte characters alike)."""
    raw = b"".join(json.dumps(event).encode() + b"\n" for event in events)
    return [raw[i : i + size] for i in range(0, len(raw), size)]


def _deliver(cursor: EventCursor, chunks: list[bytes], stop_after: int | None = None) -> tuple[list[str], str | None]:
    """Run chunks through the splitter and the cursor; (actor ids delivered, the id of the last one)."""
    delivered: list[str] = []
    last_id = None
    splitter = LineSplitter()
    for chunk in chunks:
        for line in splitter.feed(chunk):
            event = json.loads(line)
            if cursor.admit(event):
                delivered.append(event["Actor"]["ID"])
                last_id = cursor.event_id()
                if stop_after is not None and len(delivered) == stop_after:
                    return delivered, last_id
    return delivered, last_id


def _replay_since(since: str, events: list[dict[str, object]]) -> list[dict[str, object]]:
    """What the engine sends for ``since``: its history from that time on, in the order it was published."""
    seconds, _, nanos = since.partition(".")
    start = int(seconds) * 1_000_000_000 + int(nanos or 0)
    return [event for event in events if int(event["timeNano"]) >= start]  # type: ignore[call-overload]


@pytest.mark.parametrize("cut", range(1, len(RECORDED)))
@pytest.mark.parametrize("size", [7, 64, 4096])
def test_a_resume_after_any_event_delivers_every_event_once(cut: int, size: int) -> None:
    """Cut the stream after any event, resume with its id: every event once, whatever arrived late."""
    first, last_id = _deliver(EventCursor(None), _chunks(RECORDED, size), stop_after=cut)
    assert last_id is not None
    resumed = EventCursor(Position.parse(last_id))
    since = resumed.since()
    assert since is not None
    rest, _ = _deliver(resumed, _chunks(_replay_since(since, RECORDED), size))
    assert sorted(first + rest) == sorted(e["Actor"]["ID"] for e in RECORDED)  # type: ignore[index]
    assert len(first + rest) == len(RECORDED)


def test_an_event_that_was_still_on_its_way_is_delivered_after_the_resume() -> None:
    """#4 is older than #5 but came after it: cut after #5, the resume still delivers #4, and #5 not again."""
    first, last_id = _deliver(EventCursor(None), _chunks(RECORDED, 4096), stop_after=4)
    assert first == ["c001", "c002", "c003", "c005"]
    resumed = EventCursor(Position.parse(str(last_id)))
    rest, _ = _deliver(resumed, _chunks(_replay_since(str(resumed.since()), RECORDED), 4096))
    assert rest[0] == "c004" and "c005" not in rest


def test_resumes_chain() -> None:
    """A resumed stream's ids resume exactly too, however often the subscriber reconnects."""
    delivered: list[str] = []
    position: Position | None = None
    while len(delivered) < len(RECORDED):
        cursor = EventCursor(position)
        source = RECORDED if position is None else _replay_since(str(cursor.since()), RECORDED)
        got, last_id = _deliver(cursor, _chunks(source, 13), stop_after=2)
        delivered += got
        if last_id is not None:
            position = Position.parse(last_id)
        if not got:
            break
    assert sorted(delivered) == sorted(e["Actor"]["ID"] for e in RECORDED)  # type: ignore[index]


def test_a_bare_time_resumes_after_it() -> None:
    """A Last-Event-ID of digits alone (a timeNano) resumes after that time: nothing at or below it."""
    cursor = EventCursor(Position.parse(str(BASE + 11_000_000)))
    assert cursor.since() == f"{BASE // 1_000_000_000}.{11_000_000:09d}"
    delivered, _ = _deliver(cursor, _chunks(RECORDED, 4096))
    assert delivered == ["c005", "c006", "c008", "c007", "c009", "c010"]


def test_ids_parse_back_and_bad_ones_are_refused() -> None:
    """An id round-trips; anything else is a ValueError (a 400 at the route)."""
    cursor = EventCursor(None)
    for event in RECORDED:
        cursor.admit(event)
    event_id = str(cursor.event_id())
    position = Position.parse(event_id)
    assert position.encode() == event_id
    assert position.time_nano == BASE + 40_000_000 and position.reach_ns == REORDER_WINDOW_NS
    assert len(position.seen) == len(RECORDED)
    for bad in ("", "x", "1.2", "1.2.abc", "1.2.zzzzzzzz", "-5", "1.2.3.4", "1" * 21):
        with pytest.raises(ValueError):
            Position.parse(bad)


def test_the_id_stays_bounded_under_a_burst() -> None:
    """More events inside the window than the id can carry: the id stays bounded, the resume exact for the newest."""
    burst = [_event(n, 0) | {"timeNano": BASE + n} for n in range(MAX_DIGESTS + 100)]
    cursor = EventCursor(None)
    for event in burst:
        assert cursor.admit(event)
    position = Position.parse(str(cursor.event_id()))
    assert len(position.seen) <= MAX_DIGESTS
    resumed = EventCursor(position)
    assert not any(resumed.admit(event) for event in burst)
