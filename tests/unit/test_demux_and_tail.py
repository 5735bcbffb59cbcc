"""Docker's frame format and the tail-keeping output buffer (pure), with split inputs."""

from __future__ import annotations

import pytest

from docker_runner.protocol.demux import STDERR, STDOUT, FrameDemuxer, frame
from docker_runner.protocol.output_buffer import TailBuffer

HEADER_OUT_5 = b"\x01\x00\x00\x00\x00\x00\x00\x05"


def test_frame_encoding_by_hand() -> None:
    """The header is stream, three zero bytes, then the big-endian length."""
    assert frame(STDOUT, b"hello") == HEADER_OUT_5 + b"hello"
    assert frame(STDERR, b"") == b"\x02\x00\x00\x00\x00\x00\x00\x00"


def _feed_all(pieces: list[bytes]) -> list[tuple[int, bytes]]:
    demuxer = FrameDemuxer()
    frames = []
    for piece in pieces:
        frames.extend(demuxer.feed(piece))
    assert demuxer.buffered == 0
    return frames


STREAM = frame(STDOUT, b"hello") + frame(STDERR, "é✓".encode()) + frame(STDOUT, b"") + frame(STDOUT, b"x" * 70000)
EXPECTED = [(STDOUT, b"hello"), (STDERR, "é✓".encode()), (STDOUT, b""), (STDOUT, b"x" * 70000)]


@pytest.mark.parametrize("cut", [1, 3, 7, 8, 9, 13, 100, 65536])
def test_frames_cut_anywhere(cut: int) -> None:
    """Frames cut into pieces of any size come out whole, in order, none lost or doubled."""
    pieces = [STREAM[i : i + cut] for i in range(0, len(STREAM), cut)]
    assert _feed_all(pieces) == EXPECTED


def test_all_frames_in_one_chunk() -> None:
    assert _feed_all([STREAM]) == EXPECTED


def test_split_inside_multibyte_character() -> None:
    """A payload cut inside a UTF-8 character is still delivered as the original bytes."""
    data = frame(STDERR, "é✓".encode())
    assert _feed_all([data[:9], data[9:10], data[10:]]) == [(STDERR, "é✓".encode())]


def test_incomplete_frame_is_held() -> None:
    demuxer = FrameDemuxer()
    assert demuxer.feed(HEADER_OUT_5 + b"hel") == []
    assert demuxer.buffered == 11
    assert demuxer.feed(b"lo") == [(STDOUT, b"hello")]


def test_tail_buffer_keeps_the_end() -> None:
    """Past its limit the buffer keeps the last bytes and says it truncated."""
    buffer = TailBuffer(10)
    for index in range(100):
        buffer.append(str(index % 10).encode())
    assert buffer.value() == b"0123456789"
    assert buffer.truncated
    assert buffer.total == 100


def test_tail_buffer_under_limit() -> None:
    buffer = TailBuffer(10)
    buffer.append(b"abc")
    buffer.append(b"defghij")
    assert (buffer.value(), buffer.truncated) == (b"abcdefghij", False)


def test_tail_buffer_one_huge_chunk() -> None:
    buffer = TailBuffer(4)
    buffer.append(b"0123456789")
    assert (buffer.value(), buffer.truncated) == (b"6789", True)


def test_tail_buffer_memory_is_bounded() -> None:
    """However much is appended, at most twice the limit is held."""
    buffer = TailBuffer(1000)
    for _ in range(10_000):
        buffer.append(b"y" * 333)
        assert len(buffer._data) <= 2000


def test_tail_cut_inside_character_drops_the_broken_start() -> None:
    """A cut inside a multi-byte character does not leave a replacement character at the start."""
    buffer = TailBuffer(5)
    buffer.append("aé✓b".encode())  # 61 c3a9 e29c93 62: the last 5 bytes start inside é
    assert buffer.truncated
    assert buffer.text() == "✓b"
