"""``POST /v1/exec/run`` on the engine: run a command to its end, a timeout, or a cancel (blocking).

The engine has no exec-kill API and an exec's PID is a host PID, so every exec carries a unique
marker in its environment; killing it means killing, from a second exec, every process in the
container whose environment holds that marker: children, background jobs and ``setsid``
descendants included.
"""

from __future__ import annotations

import logging
import math
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from ..engine.core import APIClient, engine_errors
from ..engine.lean import LeanExecClient
from ..engine.pump import Ending, Pump
from ..engine.sockets import Canceller, raw_socket, take_buffered
from ..errors import ApiError, engine_lost_during_run
from ..protocol.demux import STDERR, FrameDemuxer
from ..protocol.output_buffer import TailBuffer

log = logging.getLogger("docker_runner.exec")

EXEC_MARKER_VARIABLE = "DOCKER_RUNNER_EXEC_TOKEN"
ExecPath = Literal["channel", "exec"]
EXIT_CODE_WAIT_SECONDS = 5.0

# A shell function that kills every process whose environment holds the marker ``$1``, until a pass
# finds none (status 1 after 100 passes). Busybox-safe. The channel's dispatcher defines it too.
KILL_MARKED_FUNCTION = r"""drc_kill() {
  m="$1"; n=0
  while [ "$n" -lt 100 ]; do
    found=0
    for d in /proc/[0-9]*; do
      p="${d#/proc/}"
      [ "$p" = "$$" ] && continue
      if { tr '\000' '\n' < "$d/environ" | grep -qxF "$m"; } 2>/dev/null; then
        kill -9 "$p" 2>/dev/null; found=1
      fi
    done
    [ "$found" = 0 ] && return 0
    n=$((n+1))
  done
  return 1
}"""
_KILL_SCRIPT = KILL_MARKED_FUNCTION + '\ndrc_kill "$1"'


# logToPid1: the command's stdout and stderr are also copied to PID 1's (the container's own output,
# what `docker logs` shows), each to its own. POSIX sh only (busybox has no process substitution):
# each stream goes through a FIFO read by a tee. The FIFOs are opened, then unlinked, before the
# command runs, so a killed run leaves no file behind; the tees carry the run's marker, so a
# timeout kills them with the command. A tee's own complaint (PID 1's output not writable by the
# exec's user) is dropped: the copy is best effort, the answer is what counts.
_PID1_TEE_SCRIPT = r"""d=$(mktemp -d 2>/dev/null) || d=$(mktemp -d -p /dev/shm 2>/dev/null) ||
  { echo "logToPid1: no writable temporary directory" >&2; exit 126; }
mkfifo "$d/o" "$d/e" || { rm -rf "$d"; exit 126; }
tee -a /proc/1/fd/1 <"$d/o" 2>/dev/null &
tee -a /proc/1/fd/2 <"$d/e" >&2 2>/dev/null &
exec 3>"$d/o" 4>"$d/e"
rm -rf "$d"
"$@" >&3 2>&4 3>&- 4>&-
code=$?
exec 3>&- 4>&-
wait
exit $code"""


def shell_command(command: str | list[str]) -> list[str]:
    """A string runs under a login shell; an array runs as given."""
    return ["/bin/sh", "-lc", command] if isinstance(command, str) else list(command)


def logged_to_pid1(cmd: list[str]) -> list[str]:
    """``cmd`` run so that its output also reaches the container's own output (logToPid1)."""
    return ["/bin/sh", "-c", _PID1_TEE_SCRIPT, "docker-runner-pid1", *cmd]


@dataclass(frozen=True)
class ExecSpec:
    container_id: str
    cmd: list[str]
    env: dict[str, str] = field(default_factory=dict)
    workdir: str | None = None
    tty: bool = False
    user: str = ""
    stdin: bytes | None = None
    timeout_ms: int = 0
    idle_timeout_ms: int = 0
    kill_on_timeout: bool = True
    max_output_bytes: int = 10 * 1024 * 1024
    log_to_pid1: bool = False


@dataclass
class ExecOutcome:
    ending: Ending
    stdout: str
    stderr: str
    truncated: bool
    duration_ms: int
    exit_code: int | None
    exec_id: str
    killed: bool = False
    path: ExecPath = "exec"  # "channel": it ran through a resident command channel (exec/channel.py)


def kill_marked_processes(api: APIClient, container_id: str, marker: str) -> bool:
    """Kill every process of the container that carries ``marker``; True when none is left."""
    try:
        created = api.exec_create(container_id, ["sh", "-c", _KILL_SCRIPT, "docker-runner-kill", marker], user="0")
        api.exec_start(created["Id"])
        exit_code = api.exec_inspect(created["Id"]).get("ExitCode")
    except Exception:  # the container died or has no shell: nothing more can be done from here
        log.warning("could not kill the processes of an exec in %s", container_id[:12], exc_info=True)
        return False
    if exit_code != 0:
        log.warning("kill exec in %s ended with %s", container_id[:12], exit_code)
    return exit_code == 0


def wait_exit_code(inspect: Callable[[str], dict[str, Any]], exec_id: str) -> int | None:
    """The exec's exit code once the engine reports it ended. Its output ends with the process, and
    the engine marks the exec ended a moment later: the first look is usually enough, the next
    ones come quickly."""
    deadline = time.monotonic() + EXIT_CODE_WAIT_SECONDS
    delay = 0.001
    while True:
        state = inspect(exec_id)
        if not state.get("Running"):
            code = state.get("ExitCode")
            return None if code is None else int(code)
        if time.monotonic() >= deadline:
            return None
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


class _OutputSink:
    def __init__(self, tty: bool, limit: int) -> None:
        self._demuxer = None if tty else FrameDemuxer()
        self.stdout = TailBuffer(limit)
        self.stderr = TailBuffer(limit)

    def feed(self, data: bytes) -> None:
        if self._demuxer is None:
            self.stdout.append(data)
            return
        for stream, payload in self._demuxer.feed(data):
            (self.stderr if stream == STDERR else self.stdout).append(payload)


def _relay(raw: socket.socket, spec: ExecSpec, sink: _OutputSink, cancel: Canceller) -> Ending:
    """Relay stdin and output until the process ends, a bound passes, or a cancel arrives."""
    pump = Pump(
        raw,
        spec.stdin,
        cancel_fd=cancel.fileno(),
        timeout_seconds=spec.timeout_ms / 1000 if spec.timeout_ms > 0 else math.inf,
        idle_seconds=spec.idle_timeout_ms / 1000 if spec.idle_timeout_ms > 0 else math.inf,
    )
    for chunk in pump:
        sink.feed(chunk)
    return pump.ending


def _exit_code(inspect: Callable[[str], dict[str, Any]], exec_id: str, sink: _OutputSink) -> int | None:
    """The exec's exit code. An engine that cannot say (gone, or restarted and has forgotten the
    exec) cut the run: 503, retryable, with the output so far, never a made-up exit code."""
    try:
        with engine_errors():
            return wait_exit_code(inspect, exec_id)
    except ApiError as error:
        if error.code in ("docker_unavailable", "no_such_exec"):
            raise engine_lost_during_run(sink.stdout.text(), sink.stderr.text()) from error
        raise


def _close(stream: Any, raw: socket.socket) -> None:
    # Closed before any kill: the engine stalls every exec of a container while one exec's
    # output is not drained, the kill's own exec included.
    stream.close()
    raw.close()


def _create_config(spec: ExecSpec, marker: str) -> dict[str, Any]:
    """The engine's exec create body, as docker-py's ``exec_create`` writes it."""
    config: dict[str, Any] = {
        "User": spec.user,
        "Privileged": False,
        "Tty": spec.tty,
        "AttachStdin": spec.stdin is not None,
        "AttachStdout": True,
        "AttachStderr": True,
        "Cmd": logged_to_pid1(spec.cmd) if spec.log_to_pid1 else spec.cmd,
        "Env": [f"{key}={value}" for key, value in spec.env.items()] + [marker],
    }
    if spec.workdir:
        config["WorkingDir"] = spec.workdir
    return config


def _started(
    api: APIClient, lean: LeanExecClient | None, spec: ExecSpec, marker: str
) -> tuple[str, socket.socket, bytes, Any]:
    """Create and start the exec: (its id, its stream's socket, bytes already read, what to close)."""
    config = _create_config(spec, marker)
    if lean is not None:
        exec_id = lean.exec_create(api.api_version, spec.container_id, config)
        raw, first = lean.exec_start(api.api_version, exec_id, spec.tty)
        return exec_id, raw, first, raw
    created = api.exec_create(
        spec.container_id,
        config["Cmd"],
        stdin=config["AttachStdin"],
        tty=spec.tty,
        environment=config["Env"],
        workdir=spec.workdir or None,
        user=spec.user,
    )
    exec_id = str(created["Id"])
    stream = api.exec_start(exec_id, tty=spec.tty, socket=True)
    raw = raw_socket(stream)
    return exec_id, raw, take_buffered(stream, raw), stream


def _inspect(api: APIClient, lean: LeanExecClient | None) -> Callable[[str], dict[str, Any]]:
    if lean is None:
        return api.exec_inspect
    return lambda exec_id: lean.exec_inspect(api.api_version, exec_id)


def run_exec(api: APIClient, spec: ExecSpec, cancel: Canceller, lean: LeanExecClient | None = None) -> ExecOutcome:
    """Run ``spec`` to its end (blocking). Ends early on a timeout or ``cancel``, killing the
    command's processes unless ``kill_on_timeout`` is off for a timeout. With ``lean``, the exec's
    own three engine calls go through it (engine/lean.py); the kills stay with docker-py."""
    started = time.monotonic()
    marker = f"{EXEC_MARKER_VARIABLE}={uuid.uuid4().hex}"
    exec_id, raw, first, stream = _started(api, lean, spec, marker)
    sink = _OutputSink(spec.tty, spec.max_output_bytes)
    killed = False
    try:
        sink.feed(first)
        ending = _relay(raw, spec, sink, cancel)
    except BaseException:
        _close(stream, raw)
        kill_marked_processes(api, spec.container_id, marker)  # a started command never outlives its run
        raise
    _close(stream, raw)
    if ending is Ending.CANCELLED or (spec.kill_on_timeout and ending is not Ending.EXITED):
        killed = kill_marked_processes(api, spec.container_id, marker)
    exit_code = _exit_code(_inspect(api, lean), exec_id, sink) if ending is Ending.EXITED or killed else None
    return ExecOutcome(
        ending=ending,
        stdout=sink.stdout.text(),
        stderr=sink.stderr.text(),
        truncated=sink.stdout.truncated or sink.stderr.truncated,
        duration_ms=int((time.monotonic() - started) * 1000),
        exit_code=exit_code,
        exec_id=exec_id,
        killed=killed,
    )
