"""One-shot runs in a container whose main process waits on its stdin for the script (blocking).

The container's main process is a tiny shell bootstrap: it reads one line (the base64 of the
script), runs the script in a subshell with the rest of stdin as the script's stdin, then prints
an exit marker with a per-run random token. Dispatching a run is then a write on an attach stream
opened ahead of time: no exec, no container start on the hot path. A container runs one script
and is thrown away, so no state leaks from one run to the next.

The image needs ``sh`` and ``base64`` (busybox, coreutils).
"""

from __future__ import annotations

import base64
import math
import shlex
import time
import uuid
from dataclasses import dataclass
from typing import Any

from ..containers.spec import STDIN_ATTACHED
from ..engine.pump import Ending, Pump
from ..engine.sockets import Attached, Canceller
from ..protocol.demux import STDERR, FrameDemuxer
from ..protocol.marked_output import MarkedStream

BOOTSTRAP = 'IFS= read -r line && eval "$(printf %s "$line" | base64 -d)"'


def bootstrap_config(body: dict[str, Any]) -> dict[str, Any]:
    """A create body whose main process is the bootstrap, with stdin attached once."""
    return {
        **body,
        "Entrypoint": ["/bin/sh", "-c", BOOTSTRAP],
        "Cmd": [],
        **STDIN_ATTACHED,
    }


def script_for(
    command: str | list[str], workdir: str | None, inline_stdin: bytes | None = None, inline: bool = False
) -> tuple[str, str]:
    """(the script the bootstrap runs, the token of its exit marker). ``inline``: the command's
    stdin is carried in the script (``inline_stdin``, or nothing), for a container whose stdin does
    not end when the attach does (a Swarm task has no stdin-once)."""
    token = uuid.uuid4().hex
    line = command if isinstance(command, str) else shlex.join(command)
    cd = f"cd {shlex.quote(workdir)} && " if workdir else ""
    # the marker goes to both streams: the engine relays stdout and stderr independently, so the
    # end of stdout says nothing about whether the last of stderr has arrived
    marker = f"'\\n__docker_runner_exit_%s:%d\\n' {token} $code"
    body = f"( {cd}{line}\n)"
    if inline and inline_stdin:
        body = f"printf %s {base64.b64encode(inline_stdin).decode()} | base64 -d | {body}"
    elif inline:
        body = f"{body} </dev/null"
    script = f"{body}\ncode=$?\nprintf {marker}\nprintf {marker} >&2\n"
    return script, token


@dataclass
class RunResult:
    exit_code: int | None
    stdout: str
    stderr: str
    truncated: bool
    timed_out: bool
    cancelled: bool
    elapsed_ms: int


class RunOutput:
    """Demultiplexed output; the run is over once both streams carried the exit marker."""

    def __init__(self, token: str, limit: int) -> None:
        self._demuxer = FrameDemuxer()
        self.stdout = MarkedStream(token.encode(), limit)
        self.stderr = MarkedStream(token.encode(), limit)

    @property
    def exit_code(self) -> int | None:
        return self.stdout.code

    @property
    def done(self) -> bool:
        return self.stdout.code is not None and self.stderr.code is not None

    def feed(self, data: bytes) -> None:
        for stream, payload in self._demuxer.feed(data):
            (self.stderr if stream == STDERR else self.stdout).feed(payload)

    def finish(self) -> None:
        self.stdout.finish()
        self.stderr.finish()


def run(
    attached: Attached,
    script: str,
    token: str,
    stdin: bytes | None,
    timeout_ms: int,
    max_output_bytes: int,
    cancel: Canceller,
    end_input: bool = True,
) -> RunResult:
    """Send the script (and stdin) and read until the exit marker, a timeout or a cancel.
    ``end_input`` False: the input stays open (a Swarm task's container, whose stdin is not
    stdin-once: its attach would end with the input, the script's stdin travels in the script)."""
    started = time.monotonic()
    # the bootstrap reads the script's line, then the rest is the script's stdin
    pump = Pump(
        attached.socket,
        base64.b64encode(script.encode()) + b"\n" + (stdin or b""),
        cancel_fd=cancel.fileno(),
        timeout_seconds=timeout_ms / 1000 if timeout_ms > 0 else math.inf,
        end_input=end_input,
    )
    output = RunOutput(token, max_output_bytes)
    for chunk in pump:
        output.feed(chunk)
        if output.done:
            break
    # the stream ending without a marker: the container was killed, or died
    output.finish()
    return RunResult(
        exit_code=output.exit_code,
        stdout=output.stdout.text.text(),
        stderr=output.stderr.text.text(),
        truncated=output.stdout.text.truncated or output.stderr.text.truncated,
        timed_out=pump.ending is Ending.TIMEOUT,
        cancelled=pump.ending is Ending.CANCELLED,
        elapsed_ms=int((time.monotonic() - started) * 1000),
    )
