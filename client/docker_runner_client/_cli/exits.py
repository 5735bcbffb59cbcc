"""Exit codes of the command line, and the one table that maps the client's exceptions to them.

The codes of the CLI's own failures sit where commands rarely exit (100-106, 124 as timeout(1)
uses it), because ``exec``, ``run``, ``test``, ``shell`` and ``job`` pass the remote command's own
exit code through. Every failure also prints one line on stderr:
``docker-runner-client: <code>: <message>``, where ``<code>`` is the runner's error code (such as
``no_such_container``) or the CLI's own (such as ``no_shared_secret``).
"""

from __future__ import annotations

from dataclasses import dataclass

from .._exceptions import (
    Conflict,
    DockerRunnerError,
    ExecTimeout,
    Forbidden,
    NotFound,
    RunnerTimeout,
    RunnerTransportError,
    Unauthorized,
    UpstreamError,
    ValidationFailed,
)

PROG = "docker-runner-client"


@dataclass(frozen=True)
class ExitCode:
    code: int
    name: str
    meaning: str
    errors: tuple[type[DockerRunnerError], ...] = ()


OK = ExitCode(0, "ok", "done; exec, run, test, shell and job pass the remote command's exit code instead")
ERROR = ExitCode(
    1, "error", "any other error answer of the runner, or an error reported on an open stream", (DockerRunnerError,)
)
USAGE = ExitCode(2, "usage", "bad arguments, unreadable local input, or no shared secret")
VALIDATION = ExitCode(100, "validation", "the runner refused the request as invalid (400)", (ValidationFailed,))
UNAUTHORIZED = ExitCode(
    101, "unauthorized", "the signature was refused: wrong secret, clock skew (401)", (Unauthorized,)
)
FORBIDDEN = ExitCode(102, "forbidden", "the runner's policy refused it (403)", (Forbidden,))
NOT_FOUND = ExitCode(103, "not_found", "no such container, image, job, ... in the runner's scope (404)", (NotFound,))
CONFLICT = ExitCode(104, "conflict", "the engine's conflict, e.g. the container is not running (409)", (Conflict,))
UPSTREAM = ExitCode(
    105, "upstream", "the engine failed or is unavailable, or the runner is busy (502, 503)", (UpstreamError,)
)
TRANSPORT = ExitCode(
    106, "transport", "no answer: the runner cannot be reached, or it broke the connection", (RunnerTransportError,)
)
TIMEOUT = ExitCode(
    124,
    "timeout",
    "the command ran past --timeout (504), or the runner did not answer in time",
    (ExecTimeout, RunnerTimeout),
)
INTERRUPTED = ExitCode(130, "interrupted", "stopped by Ctrl-C (SIGINT)")
BROKEN_PIPE = ExitCode(141, "broken_pipe", "the reader of the output went away (as SIGPIPE would)")

EXIT_CODES: tuple[ExitCode, ...] = (
    OK,
    ERROR,
    USAGE,
    VALIDATION,
    UNAUTHORIZED,
    FORBIDDEN,
    NOT_FOUND,
    CONFLICT,
    UPSTREAM,
    TRANSPORT,
    TIMEOUT,
    INTERRUPTED,
    BROKEN_PIPE,
)

_BY_ERROR: dict[type[DockerRunnerError], ExitCode] = {error: exit for exit in EXIT_CODES for error in exit.errors}


class CliError(Exception):
    """A failure of the command line itself (arguments, local files), or an outcome that is one
    (a run that timed out): its code, message and exit code."""

    def __init__(self, code: str, message: str, exit_code: ExitCode = USAGE) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.exit_code = exit_code


def exit_code_for(error: DockerRunnerError) -> int:
    """The exit code of the most specific class of ``error`` that the table names."""
    for cls in type(error).__mro__:
        if cls in _BY_ERROR:
            return _BY_ERROR[cls].code
    return ERROR.code


def error_line(code: str, message: str) -> str:
    """The one line a failure prints on stderr."""
    return f"{PROG}: {code}: {' '.join(message.split()) or 'failed'}"


def runner_error_line(error: DockerRunnerError) -> str:
    return error_line(error.code, error.message or str(error))


def exit_codes_help() -> str:
    """The table, as --help shows it."""
    lines = ["exit codes:"]
    lines += [f"  {exit.code:>3}  {exit.name:<13} {exit.meaning}" for exit in EXIT_CODES]
    return "\n".join(lines)
