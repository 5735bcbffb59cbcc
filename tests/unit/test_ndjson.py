"""The byte-level line splitter: every line once, none lost or doubled, whatever the cuts."""

from __future__ import annotations

import json

import pytest

from docker_runner.ndjson import LineSplitter

EVENTS = [{"id": "a", "n": 1}, {"id": "é✓😀", "n": 2}, {"id": "c" * 5000, "n": 3}]
STREAM = b"".join(json.dumps(event, ensure_ascii=False).encode() + b"\n" for event in EVENTS)


def _split(pieces: list[bytes]) -> list[dict[str, object]]:
    splitter = LineSplitter()
    lines = [line for piece in pieces for line in splitter.feed(piece)] + splitter.flush()
    return [json.loads(line) for line in lines]


@pytest.mark.parametrize(
    ("name", "pieces"),
    [
        ("all events in one chunk", [STREAM]),
        ("one byte at a time", [STREAM[i : i + 1] for i in range(len(STREAM))]),
        ("one event over many chunks", [STREAM[i : i + 7] for i in range(0, len(STREAM), 7)]),
        ("cut right after each newline", [line + b"\n" for line in STREAM.split(b"\n") if line]),
        ("cut right before each newline", [p for line in STREAM.split(b"\n") if line for p in (line, b"\n")]),
        ("empty chunks between", [b"", STREAM[:10], b"", STREAM[10:], b""]),
    ],
)
def test_every_event_once(name: str, pieces: list[bytes]) -> None:
    assert _split(pieces) == EVENTS, name


def test_multibyte_character_split_between_chunks() -> None:
    """A character cut between chunks (é is c3 a9, 😀 is four bytes) survives."""
    line = json.dumps({"x": "é😀"}, ensure_ascii=False).encode() + b"\n"
    cut = line.index("😀".encode()) + 2
    assert _split([line[:cut], line[cut:]]) == [{"x": "é😀"}]
    cut_e = line.index("é".encode()) + 1
    assert _split([line[:cut_e], line[cut_e:]]) == [{"x": "é😀"}]


def test_trailing_line_without_newline_is_flushed() -> None:
    splitter = LineSplitter()
    assert splitter.feed(b'{"a":1}\n{"b":') == [b'{"a":1}']
    assert splitter.feed(b"2}") == []
    assert splitter.flush() == [b'{"b":2}']
    assert splitter.flush() == []


def test_crlf_and_blank_lines() -> None:
    splitter = LineSplitter()
    assert splitter.feed(b'{"a":1}\r\n\n\n{"b":2}\r\n') == [b'{"a":1}', b'{"b":2}']


def test_runaway_line_is_dropped_not_buffered() -> None:
    splitter = LineSplitter(max_line_bytes=100)
    assert splitter.feed(b"x" * 150) == []
    assert splitter.buffered == 0 and splitter.overlong == 1
    assert splitter.feed(b"x" * 50) == []  # still the same overlong line
    assert splitter.feed(b'xx\n{"ok":1}\n') == [b'{"ok":1}']
