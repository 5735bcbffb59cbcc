"""The byte-level line splitter: every line once, none lost or doubled, whatever the cuts."""

from __future__ import annotations

import json

import pytest

from docker_runner.protocol.ndjson import LineSplitter

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
    """Blank lines are dropped by default (the engine's event stream)."""
    splitter = LineSplitter()
    assert splitter.feed(b'{"a":1}\r\n\n\n{"b":2}\r\n') == [b'{"a":1}', b'{"b":2}']
    assert splitter.feed(b"\r") == [] and splitter.flush() == []


def test_blank_lines_kept_when_asked() -> None:
    """With keep_blank (a job's output) every blank line is a line, CRLF ones and a last lone CR too."""
    splitter = LineSplitter(keep_blank=True)
    assert splitter.feed(b"a\n\n\r\nb\n") == [b"a", b"", b"", b"b"]
    assert splitter.feed(b"\n") == [b""]
    assert splitter.flush() == []  # nothing pending: no line
    assert splitter.feed(b"\r") == [] and splitter.flush() == [b""]


def test_runaway_line_is_dropped_not_buffered() -> None:
    splitter = LineSplitter(max_line_bytes=100)
    assert splitter.feed(b"x" * 150) == []
    assert splitter.buffered == 0 and splitter.overlong == 1
    assert splitter.feed(b"x" * 50) == []  # still the same overlong line
    assert splitter.feed(b'xx\n{"ok":1}\n') == [b'{"ok":1}']


@pytest.mark.parametrize(
    ("name", "pieces"),
    [
        ("in one chunk", [b"ok\n" + b"x" * 101 + b"\nfine\n"]),
        ("overlong line whole in its own chunk", [b"ok\n", b"x" * 101 + b"\n", b"fine\n"]),
        ("overlong line whole then the next", [b"ok\n", b"x" * 101 + b"\nfine\n"]),
        ("overlong line cut in two", [b"ok\n" + b"x" * 60, b"x" * 41 + b"\nfine\n"]),
        ("overlong tail past the limit", [b"ok\n" + b"x" * 101, b"\nfine\n"]),
        ("one byte at a time", [bytes([byte]) for byte in b"ok\n" + b"x" * 101 + b"\nfine\n"]),
    ],
)
def test_limit_applies_to_every_line_however_cut(name: str, pieces: list[bytes]) -> None:
    """A line over the limit is dropped and counted once, whether it came whole or in pieces."""
    splitter = LineSplitter(max_line_bytes=100)
    lines = [line for piece in pieces for line in splitter.feed(piece)] + splitter.flush()
    assert (lines, splitter.overlong) == ([b"ok", b"fine"], 1), name


def test_line_at_the_limit_is_kept_and_an_overlong_last_line_is_dropped() -> None:
    """Exactly max_line_bytes passes (complete or flushed); one byte more, without newline, does not."""
    splitter = LineSplitter(max_line_bytes=4)
    assert splitter.feed(b"abcd\nabcde\n") == [b"abcd"]
    assert splitter.feed(b"wxyz") == [] and splitter.flush() == [b"wxyz"]
    splitter.feed(b"abc")
    splitter.feed(b"de")  # past the limit while still unfinished: dropped at once
    assert splitter.flush() == [] and splitter.overlong == 2
    assert splitter.feed(b"next\n") == [b"next"]  # flush ended the skipping
