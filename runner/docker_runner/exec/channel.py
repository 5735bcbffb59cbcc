"""The resident command channel (blocking): one long-lived ``docker exec`` of a small POSIX-sh
dispatcher per channel, which reads commands as lines (a script, raw or as its base64) and runs
each with the semantics of an exec run, without an engine exec per command.

Two shells share the work. A reader (a background function of the dispatcher) owns the channel's
stdin: it does a kill line itself, copies a command's stdin to a file, and hands every other line
to the dispatcher through a FIFO. The dispatcher runs each command in its foreground, so that the
command gets SIGINT and SIGQUIT with their default action, as under docker exec (a shell gives
the commands it starts in the background those two signals ignored, for good).

Each command gets its own FIFOs, read by two relays (``cat``) that copy them to the channel's
stdout and stderr between a begin and an end marker carrying the run's random token. The end
marker is written by the dispatcher once the command has ended, so it comes after all of the
command's own output; a background process that still holds the FIFOs cannot stall the answer,
and it can never write into a later command's output: the runner drops what comes before a run's
begin marker, and the dispatcher kills the former relays (``drc_clean``) before it prints the next
one.

While a command runs, a kill is one more line to the reader (``drc_kill``), which kills every
process carrying the run's marker (as :mod:`.run` does from a second exec); the dispatcher then
prints the end marker: the channel survives.

The command's stdin travels on the channel's stdin right after its line, as many bytes as the line
says; ``dd`` copies exactly those to a file the command reads (then EOF).

The image needs ``sh`` and ``base64`` (and ``mkfifo``, ``mktemp``, ``dd``, ``cat``, ``env``,
``wc``, ``tr``, ``grep``: busybox and coreutils have them all). The dispatcher checks for them
first and prints a ready line; without it the channel is refused (:class:`NoChannel`) and the
caller runs the command with ``docker exec`` instead.
"""

from __future__ import annotations

import base64
import contextlib
import math
import shlex
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ..engine.core import APIClient
from ..engine.pump import Ending, Pump, wait_for
from ..engine.sockets import Canceller, raw_socket, take_buffered
from ..errors import exec_channel_lost, from_engine
from ..protocol.demux import STDERR, FrameDemuxer
from ..protocol.marked_output import BracketedStream
from .run import (
    EXEC_MARKER_VARIABLE,
    KILL_MARKED_FUNCTION,
    ExecOutcome,
    ExecSpec,
    kill_marked_processes,
    logged_to_pid1,
    wait_exit_code,
)

READY_LINE = b"__docker_runner_ready\n"
READY_WAIT_SECONDS = 10.0
KILLED_WAIT_SECONDS = 5.0  # a killed command's end marker; past it the channel is dropped
KILL_AGAIN_SECONDS = 0.5  # meanwhile the kill line is sent again this often
# A channel idle this long is asked for a pong before a command is written to it: a container
# paused meanwhile would otherwise hold the command (and run it once unpaused) instead of 409.
# Every time, at a round trip's cost (about 1-2 ms here): a pause comes as soon as a script asks.
PING_AFTER_IDLE_SECONDS = 0.0
PONG_WAIT_SECONDS = 1.0  # then the container's state is looked at
STUCK_AFTER_SECONDS = 4.0  # then, in a running container, the channel is let go for a new one
CHANNEL_MARKER_VARIABLE = "DOCKER_RUNNER_CHANNEL"

# The dispatcher. Its own temporary directory (in /dev/shm where it can, so that no file of it is
# on the container's disk) holds the reader's FIFO to it (q) and each command's FIFOs and stdin
# file; it is removed when the dispatcher ends (its stdin closed: the runner let the channel go;
# a command it still runs, let go by the runner too, ends first).
DISPATCHER = r"""for c in base64 mkfifo mktemp dd cat env wc tr grep; do
  command -v "$c" >/dev/null 2>&1 || exit 97
done
[ "$(printf ab | dd bs=65536 count=1 iflag=count_bytes,fullblock 2>/dev/null)" = a ] || exit 97
D=$(mktemp -d -p /dev/shm 2>/dev/null) || D=$(mktemp -d 2>/dev/null) || exit 98
S=
command -v setsid >/dev/null 2>&1 && S=setsid
RD= R1= R2= T=
drc_clean() {
  if [ -n "$R1" ]; then kill -9 "$R1" "$R2" 2>/dev/null; wait "$R1" "$R2" 2>/dev/null; fi
  [ -n "$T" ] && rm -f "$D/o$T" "$D/e$T" "$D/i$T"
  R1= R2= T=
}
drc_run() {
  drc_clean
  T=$1 I=/dev/null
  [ "$2" -ge 0 ] && I="$D/i$T"
  mkfifo "$D/o$T" "$D/e$T" || exit 96
  printf '\n__docker_runner_begin_%s\n' "$T"
  printf '\n__docker_runner_begin_%s\n' "$T" >&2
  cat "$D/o$T" 5>&- & R1=$!
  cat "$D/e$T" >&2 5>&- & R2=$!
  exec 3>"$D/o$T" 4>"$D/e$T" 7>&2 2>/dev/null
  ( eval "$3" ) <"$I" >&3 2>&4 3>&- 4>&- 5>&- 7>&-
  c=$?
  printf '\n__docker_runner_exit_%s:%d\n' "$T" "$c" >&3
  printf '\n__docker_runner_exit_%s:%d\n' "$T" "$c" >&4
  exec 3>&- 4>&- 2>&7 7>&-
}
drc_has() {
  command -v -- "$1" >/dev/null 2>&1 && return
  printf 'exec: "%s": executable file not found in $PATH\n' "$1" >&2
  exit 126
}
%KILL_MARKED_FUNCTION%
drc_read() {
  while IFS= read -r l; do
    case $l in
      "k "*) drc_kill "${l#??}" >/dev/null 2>&1 ;;
      "r "*)
        h=${l#??}; t=${h%% *}; h=${h#* }; n=${h%% *}
        if [ "$n" -ge 0 ]; then
          dd bs=65536 count="$n" iflag=count_bytes,fullblock of="$D/i$t" 2>/dev/null
          [ "$(wc -c < "$D/i$t")" -eq "$n" ] || { printf ':exit 95\n' >&5; return; }
        fi
        printf '%s\n' "${h#* }" >&5 ;;
      "- "*) printf '%s\n' "${l#??}" >&5 ;;
    esac
  done
  printf ':exit\n' >&5
}
trap '[ -n "$RD" ] && kill "$RD" 2>/dev/null; drc_clean; rm -rf "$D"' EXIT
trap : INT QUIT
mkfifo "$D/q" 2>/dev/null || exit 98
exec 5<>"$D/q" 6<&0
drc_read <&6 >/dev/null 2>&1 &
RD=$!
exec 6<&- </dev/null
printf '__docker_runner_ready\n'
while IFS= read -r line <&5; do
  case $line in
    :*) eval "${line#:}" ;;
    *) eval "$(printf %s "$line" | base64 -d)" ;;
  esac
done""".replace("%KILL_MARKED_FUNCTION%", KILL_MARKED_FUNCTION)


# The dispatcher's exit codes that say the image cannot hold a channel: a tool missing or one
# without what the dispatcher asks of it (97), no sh (126, 127: the engine could not start it).
LASTING_REFUSALS = (97, 126, 127)
# No writable temporary directory (98) may pass (a full /dev/shm and /tmp): the container is asked
# again after this long, and meanwhile its commands run with docker exec without the try.
PASSING_REFUSAL = 98
PASSING_REFUSAL_SECONDS = 30.0


class NoChannel(Exception):
    """The container cannot hold a channel now. ``remember_seconds``: how long not to ask it again;
    ``math.inf`` for an image that never can (no sh, no base64), a while for a temporary directory
    that cannot be written now, 0 for a container stopping under the start."""

    def __init__(self, message: str, remember_seconds: float = 0.0) -> None:
        super().__init__(message)
        self.remember_seconds = remember_seconds


class NeverStarted(Exception):
    """The channel ended before it began the command (no begin marker on either stream): the
    command never ran, so it can run elsewhere (a dispatcher that died while idle, unseen)."""


def remember_refusal_for(exit_code: int | None) -> float:
    """How long a dispatcher that ended with ``exit_code`` before its ready line is believed."""
    if exit_code in LASTING_REFUSALS:
        return math.inf
    if exit_code == PASSING_REFUSAL:
        return PASSING_REFUSAL_SECONDS
    return 0.0


def _line(script: str) -> bytes:
    """A script as one line: as it is after a ``:`` when it holds no line break, else its base64."""
    if "\n" not in script and "\r" not in script:
        return b":" + script.encode() + b"\n"
    return base64.b64encode(script.encode()) + b"\n"


def _forwarded(script: str) -> bytes:
    """A line the reader hands on to the dispatcher as it is (the dispatcher is idle)."""
    return b"- " + _line(script)


def _run_line(token: str, stdin_size: int, script: str) -> bytes:
    """A command's line: the reader copies the ``stdin_size`` bytes after it (-1: none) to the
    command's stdin file first, then hands the script on."""
    return f"r {token} {stdin_size} ".encode() + _line(script)


def _kill_line(marker: str) -> bytes:
    """Done by the reader at once, while the dispatcher waits for the command."""
    return f"k {marker}\n".encode()


CLEAN_LINE = _forwarded("drc_clean")


def missing_program_check(program: str) -> str:
    """A program that is not there ends the run with 126 and the engine's words, as docker exec's
    runtime answers it (env itself would answer 127): ``drc_has``, in the command's subshell."""
    return f"drc_has {shlex.quote(program)}"


def command_script(spec: ExecSpec, token: str, marker: str) -> str:
    """The line's script for ``spec``: ``drc_run`` with the run's token, the size of its stdin
    (``-1``: none; the bytes follow the line on the channel) and the command as shell words."""
    cmd = logged_to_pid1(spec.cmd) if spec.log_to_pid1 else spec.cmd
    program = cmd[0]
    if "=" in program:  # a program, not an assignment for env: as docker exec would look it up
        cmd = ["/bin/sh", "-c", 'exec "$@"', "sh", *cmd]
    assignments = [f"{key}={value}" for key, value in spec.env.items()] + [marker]
    # its own session (where setsid is), as a docker exec: ``kill 0`` stays in the command's group
    run = "exec $S env -- " + " ".join(shlex.quote(part) for part in [*assignments, *cmd])
    if "PATH" not in spec.env:  # (the dispatcher's PATH is the one env looks the program up in)
        run = f"{missing_program_check(program)}; {run}"
    if spec.workdir:
        run = f"cd {shlex.quote(spec.workdir)} || exit 126; {run}"
    size = -1 if spec.stdin is None else len(spec.stdin)
    return f"drc_run {token} {size} {shlex.quote(run)}"


class _Output:
    def __init__(self, token: str, limit: int) -> None:
        self.stdout = BracketedStream(token, limit)
        self.stderr = BracketedStream(token, limit)

    @property
    def done(self) -> bool:
        return self.stdout.code is not None and self.stderr.code is not None

    def feed(self, frames: list[tuple[int, bytes]]) -> None:
        for stream, payload in frames:
            (self.stderr if stream == STDERR else self.stdout).feed(payload)

    def finish(self) -> None:
        self.stdout.finish()
        self.stderr.finish()


@dataclass
class _Result:
    ending: Ending
    done: bool
    input_left: bool


class Channel:
    """One dispatcher in one container, for one user; one command at a time."""

    def __init__(self, container_id: str, user: str, exec_id: str, stream: Any) -> None:
        self.container_id = container_id
        self.user = user
        self.exec_id = exec_id
        self._stream = stream
        self._raw = raw_socket(stream)
        self._demuxer = FrameDemuxer()
        self.closed = False
        self.idle_since = time.monotonic()

    @classmethod
    def open(cls, api: APIClient, container_id: str, user: str) -> Channel:
        """Start a dispatcher and wait for its ready line. Engine refusals (404, 409) are raised as
        they come; a container that cannot hold a channel raises :class:`NoChannel`."""
        created = api.exec_create(
            container_id,
            ["/bin/sh", "-c", DISPATCHER],
            stdin=True,
            tty=False,
            environment=[f"{CHANNEL_MARKER_VARIABLE}={uuid.uuid4().hex}"],
            user=user,
        )
        channel = cls(container_id, user, str(created["Id"]), api.exec_start(created["Id"], socket=True))
        try:
            channel._await_ready(take_buffered(channel._stream, channel._raw))
        except NoChannel as refusal:
            channel.close()
            code = wait_exit_code(api.exec_inspect, channel.exec_id)
            raise NoChannel(f"{refusal} (exit code {code})", remember_refusal_for(code)) from None
        except BaseException:
            channel.close()
            raise
        return channel

    def _await_ready(self, first: bytes) -> None:
        seen = b""
        frames = self._demuxer.feed(first)
        pump = Pump(self._raw, None, timeout_seconds=READY_WAIT_SECONDS, end_input=False)
        chunks: Iterator[bytes] = iter(pump)
        while True:
            seen = (seen + b"".join(payload for stream, payload in frames if stream != STDERR))[-4096:]
            if READY_LINE in seen:
                return
            chunk = next(chunks, None)
            if chunk is None:
                raise NoChannel(f"no ready line from the channel ({pump.ending.value}): {seen[-200:]!r}")
            frames = self._demuxer.feed(chunk)

    def alive(self) -> bool:
        """False when the dispatcher has ended (its stream is at its end)."""
        if self.closed:
            return False
        ready = wait_for(self._raw, None, False, 0)
        if not ready.readable:
            return True
        try:
            return self._raw.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) != b""
        except (BlockingIOError, InterruptedError):
            return True
        except OSError:
            return False

    def responsive(self, api: APIClient, cancel: Canceller) -> bool:
        """Is the dispatcher there to read a command? Asked before each command: False
        when it has ended; 409 ``container_not_running`` when the container is paused or stopped
        (the channel is let go: nothing was sent to it that could run later)."""
        if time.monotonic() - self.idle_since < PING_AFTER_IDLE_SECONDS:
            return True
        token = uuid.uuid4().hex
        pong = f"__docker_runner_pong_{token}\n".encode()
        data: bytes | None = _forwarded(f"printf '__docker_runner_pong_%s\\n' {token}")
        seen = b""
        for attempt, wait in enumerate((PONG_WAIT_SECONDS, STUCK_AFTER_SECONDS)):
            pump = Pump(self._raw, data, cancel_fd=cancel.fileno(), timeout_seconds=wait, end_input=False)
            for chunk in pump:
                frames = self._demuxer.feed(chunk)
                seen = (seen + b"".join(payload for stream, payload in frames if stream != STDERR))[-4096:]
                if pong in seen:
                    return True
            if pump.ending is not Ending.TIMEOUT:
                break
            if attempt == 0:
                data = None
                self._refuse_unless_running(api)
        # ended, or stuck in a running container (its dispatcher stopped, say): another one serves
        self.close()
        return False

    def _refuse_unless_running(self, api: APIClient) -> None:
        state = api.inspect_container(self.container_id).get("State") or {}
        if state.get("Paused") or not state.get("Running"):
            self.close()
            why = "is paused, unpause the container before exec" if state.get("Paused") else "is not running"
            raise from_engine(409, f"Container {self.container_id} {why}")

    def close(self) -> None:
        """Let the dispatcher go: its stdin ends, it ends (a command it still runs is left alone)."""
        if self.closed:
            return
        self.closed = True
        with contextlib.suppress(Exception):
            self._raw.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(Exception):
            self._stream.close()
        with contextlib.suppress(OSError):
            self._raw.close()

    def _relay(self, data: bytes, output: _Output, cancel_fd: int | None, timeout: float, idle: float) -> _Result:
        pump = Pump(self._raw, data, cancel_fd=cancel_fd, timeout_seconds=timeout, idle_seconds=idle, end_input=False)
        for chunk in pump:
            output.feed(self._demuxer.feed(chunk))
            if output.done:
                return _Result(Ending.EXITED, True, pump.input_left)
        return _Result(pump.ending, False, pump.input_left)

    def run(self, api: APIClient, spec: ExecSpec, cancel: Canceller) -> tuple[ExecOutcome, bool]:
        """Run ``spec`` through the channel: (its outcome, whether the channel can serve another).
        Raises ``exec_channel_lost`` when the channel ends under the command, :class:`NeverStarted`
        when it ended before the command began."""
        started = time.monotonic()
        # the command sees its kill marker in its environment, never the token of its output's
        # markers: it cannot end its own run early by printing them
        token = uuid.uuid4().hex
        marker = f"{EXEC_MARKER_VARIABLE}={uuid.uuid4().hex}"
        output = _Output(token, spec.max_output_bytes)
        size = -1 if spec.stdin is None else len(spec.stdin)
        data = _run_line(token, size, command_script(spec, token, marker)) + (spec.stdin or b"")
        try:
            result = self._relay(
                data,
                output,
                cancel.fileno(),
                spec.timeout_ms / 1000 if spec.timeout_ms > 0 else math.inf,
                spec.idle_timeout_ms / 1000 if spec.idle_timeout_ms > 0 else math.inf,
            )
            killed, reusable = self._settle(api, spec, marker, output, result)
        except NeverStarted:
            self.close()
            raise
        except BaseException:
            self.close()
            kill_marked_processes(api, self.container_id, marker)  # a started command never outlives its run
            raise
        if not reusable:
            self.close()
        output.finish()  # what a marker's reserve held back, when no marker came
        outcome = ExecOutcome(
            ending=result.ending,
            stdout=output.stdout.marked.text.text(),
            stderr=output.stderr.marked.text.text(),
            truncated=output.stdout.marked.text.truncated or output.stderr.marked.text.truncated,
            duration_ms=int((time.monotonic() - started) * 1000),
            exit_code=output.stdout.code,
            exec_id=self.exec_id,
            killed=killed,
            path="channel",
        )
        return outcome, reusable

    def _settle(
        self, api: APIClient, spec: ExecSpec, marker: str, output: _Output, result: _Result
    ) -> tuple[bool, bool]:
        """After the relay: (killed, reusable). The end of a command that did not end by itself."""
        if result.done:
            return False, self._send(CLEAN_LINE)
        if result.ending is Ending.EXITED:  # the stream ended: the dispatcher is gone (run kills what is left)
            output.finish()
            if not output.stdout.begun and not output.stderr.begun:
                raise NeverStarted(f"the exec channel {self.exec_id[:12]} ended before the command began")
            raise exec_channel_lost(output.stdout.marked.text.text(), output.stderr.marked.text.text())
        if result.ending is not Ending.CANCELLED and not spec.kill_on_timeout:
            return False, False  # the command runs on; the channel is let go
        if not result.input_left:
            # Again every KILL_AGAIN_SECONDS: a kill the reader does before the dispatcher has
            # started the command (a run cut a few ms in) finds nothing to kill; a later one finds it.
            deadline = time.monotonic() + KILLED_WAIT_SECONDS
            while (left := deadline - time.monotonic()) > 0:
                after = self._relay(_kill_line(marker), output, None, min(KILL_AGAIN_SECONDS, left), math.inf)
                if after.done:
                    return True, self._send(CLEAN_LINE)
                if after.ending is not Ending.TIMEOUT:
                    break
        self.close()  # before the kill: the engine stalls a container's execs while one is not drained
        return kill_marked_processes(api, self.container_id, marker), False

    def _send(self, data: bytes) -> bool:
        try:
            self._raw.setblocking(True)
            self._raw.sendall(data)
        except OSError:
            return False
        return True
