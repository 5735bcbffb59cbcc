"""One-shot output: the exit marker on both streams ends a run, wherever the engine cuts the frames."""

from __future__ import annotations

import struct

from docker_runner.workloads.bootstrap import RunOutput, script_for

TOKEN = "0123456789abcdef0123456789abcdef"
MARKER = f"\n__docker_runner_exit_{TOKEN}:3\n".encode()


def frame(stream: int, payload: bytes) -> bytes:
    return struct.pack(">BxxxI", stream, len(payload)) + payload


def test_stdout_marker_alone_does_not_end_the_run() -> None:
    """The engine relays the streams independently: stderr may still be on its way."""
    output = RunOutput(TOKEN, 1024)
    output.feed(frame(1, b"out" + MARKER))
    assert (output.exit_code, output.done) == (3, False)
    output.feed(frame(2, b"late err"))
    output.feed(frame(2, MARKER))
    assert output.done
    output.finish()
    assert (output.stdout.text.text(), output.stderr.text.text()) == ("out", "late err")


def test_marker_cut_anywhere_and_foreign_tokens_are_kept_as_output() -> None:
    foreign = b"\n__docker_runner_exit_" + b"f" * 32 + b":0\n"
    stream = b"a" + foreign + b"b" + MARKER + b"after the marker"
    for cut in range(1, len(stream)):
        output = RunOutput(TOKEN, 1024)
        output.feed(frame(1, stream[:cut]) + frame(1, stream[cut:]) + frame(2, MARKER))
        output.finish()
        assert output.done and output.exit_code == 3
        assert output.stdout.text.text().encode() == b"a" + foreign + b"b"


def test_script_prints_the_marker_on_both_streams() -> None:
    script, token = script_for(["echo", "it's"], "/w d")
    assert "cd '/w d' && echo 'it'\"'\"'s'" in script
    assert script.count(token) == 2 and script.rstrip().endswith(">&2")
