"""The channel's output streams and lines (pure): what comes before a run's begin marker belongs to
no run; the end marker ends it; both are found wherever the engine cuts the stream."""

from __future__ import annotations

import base64
import shlex

from docker_runner.exec.channel import _forwarded, _kill_line, _line, _run_line, command_script, missing_program_check
from docker_runner.exec.run import ExecSpec
from docker_runner.protocol.marked_output import BracketedStream, begin_marker

TOKEN = "0123456789abcdef0123456789abcdef"
OTHER = "f" * 32
END = f"\n__docker_runner_exit_{TOKEN}:7\n".encode()


def test_output_between_the_markers_is_the_runs_wherever_it_is_cut() -> None:
    """A former run's leftovers (its end marker included) and a foreign begin are dropped; bytes
    after the end are too; any cut gives the same text and code."""
    before = b"late output of a background process" + f"\n__docker_runner_exit_{OTHER}:0\n".encode()
    stream = before + begin_marker(OTHER) + b"x" + begin_marker(TOKEN) + b"mine\nno newline" + END + b"after"
    for cut in range(1, len(stream)):
        output = BracketedStream(TOKEN, 1024)
        output.feed(stream[:cut])
        output.feed(stream[cut:])
        assert (output.code, output.marked.text.text()) == (7, "mine\nno newline")


def test_nothing_counts_before_the_begin_marker() -> None:
    output = BracketedStream(TOKEN, 1024)
    output.feed(b"a" * 100_000 + END)
    output.finish()
    assert (output.begun, output.code, output.marked.text.text()) == (False, None, "")


def test_a_line_is_raw_after_a_colon_unless_it_holds_a_line_break() -> None:
    assert _line("drc_clean") == b":drc_clean\n"
    assert _line("echo a\necho b") == base64.b64encode(b"echo a\necho b") + b"\n"


def test_the_reader_sees_what_each_line_is_at_its_start() -> None:
    """k: a kill the reader does itself; r: a command with its token and stdin size, the script
    after them; -: a script handed on as it is."""
    assert _kill_line("DOCKER_RUNNER_EXEC=ab") == b"k DOCKER_RUNNER_EXEC=ab\n"
    assert _run_line(TOKEN, 3, "drc_run x") == f"r {TOKEN} 3 :drc_run x\n".encode()
    assert _run_line(TOKEN, -1, "a\nb") == f"r {TOKEN} -1 ".encode() + base64.b64encode(b"a\nb") + b"\n"
    assert _forwarded("drc_clean") == b"- :drc_clean\n"


def test_a_missing_program_is_looked_up_unless_the_command_sets_its_path() -> None:
    """126 and the engine's words, as docker exec answers a program that is not there; with its own
    PATH the command is left to env (127), since the lookup would use the dispatcher's."""
    script = command_script(ExecSpec(container_id="c", cmd=["nope"]), TOKEN, "M=1")
    assert missing_program_check("nope") in shlex.split(script)[3]
    own_path = command_script(ExecSpec(container_id="c", cmd=["nope"], env={"PATH": "/x"}), TOKEN, "M=1")
    assert "command -v" not in own_path


def test_the_command_is_quoted_into_drc_run() -> None:
    """Words stay words; stdin's size (-1: none) and the workdir are in the line."""
    spec = ExecSpec(container_id="c", cmd=["echo", "a  b", "$HOME"], env={"K": "v w"}, workdir="/my dir")
    script = command_script(spec, TOKEN, f"DOCKER_RUNNER_EXEC_TOKEN={TOKEN}")
    assert shlex.split(script) == [
        "drc_run",
        TOKEN,
        "-1",
        f"cd '/my dir' || exit 126; {missing_program_check('echo')}; "
        f"exec $S env -- 'K=v w' DOCKER_RUNNER_EXEC_TOKEN={TOKEN} echo 'a  b' '$HOME'",
    ]
    with_stdin = command_script(ExecSpec(container_id="c", cmd=["cat"], stdin=b"abc"), TOKEN, "M=1")
    assert with_stdin.startswith(f"drc_run {TOKEN} 3 ")


def test_a_program_named_like_an_assignment_is_run_not_assigned() -> None:
    """env would take ``A=1`` for a variable; docker exec looks it up as a program."""
    script = command_script(ExecSpec(container_id="c", cmd=["A=1", "x"]), TOKEN, "M=1")
    assert shlex.split(shlex.split(script)[3])[-6:] == ["/bin/sh", "-c", 'exec "$@"', "sh", "A=1", "x"]


def test_a_marker_of_another_run_cannot_hide_this_runs_end() -> None:
    """Output ending in a foreign end marker without its newline shares its leading newline with the
    real marker: the real one is still found."""
    foreign = f"hello\n__docker_runner_exit_{OTHER}:0".encode()
    output = BracketedStream(TOKEN, 1024)
    output.feed(begin_marker(TOKEN) + foreign + END)
    assert (output.code, output.marked.text.text()) == (7, foreign.decode())
