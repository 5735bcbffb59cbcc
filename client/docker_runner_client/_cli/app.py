"""The parser of every command, and ``main``: one client for the command, failures as one line
on stderr and an exit code from the table in :mod:`.exits`."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from .._client import HttpDockerRunnerClient
from .._exceptions import DockerRunnerError
from . import containers, copy, execs, jobs, shell, streams, terminal
from .commands import add_common
from .exits import (
    BROKEN_PIPE,
    INTERRUPTED,
    PROG,
    CliError,
    error_line,
    exit_code_for,
    exit_codes_help,
    runner_error_line,
)

DESCRIPTION = """\
The docker-runner from a shell, on the typed client. The runner and its secret: --url or
DOCKER_RUNNER_URL, and DOCKER_RUNNER_SHARED_SECRET (DOCKER_RUNNER_TIMEOUT_MS bounds each request).
Tables for people by default; --json for scripts (after the command name or before it)."""

# health and ready are open routes: they need no secret, but the client wants one to exist
OPEN_ROUTE_SECRET = "no-secret-needed-for-open-routes"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=DESCRIPTION,
        epilog=exit_codes_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_common(parser, top=True)
    commands = parser.add_subparsers(dest="subcommand", required=True, metavar="COMMAND")
    for module in (containers, execs, copy, shell, streams, jobs, terminal):
        module.register(commands)
    return parser


def _client(args: argparse.Namespace) -> HttpDockerRunnerClient:
    secret = None
    if getattr(args, "open_route", False) and not os.environ.get("DOCKER_RUNNER_SHARED_SECRET"):
        secret = OPEN_ROUTE_SECRET
    try:
        return HttpDockerRunnerClient(args.url, secret)
    except ValueError as exc:  # no secret, or a bad DOCKER_RUNNER_TIMEOUT_MS
        raise CliError("no_shared_secret" if "secret" in str(exc) else "bad_setting", str(exc)) from None


def _fail(line: str, code: int) -> int:
    sys.stdout.flush()
    print(line, file=sys.stderr)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        with _client(args) as client:
            return int(args.handler(client, args))
    except DockerRunnerError as error:
        return _fail(runner_error_line(error), exit_code_for(error))
    except CliError as error:
        return _fail(error_line(error.code, error.message), error.exit_code.code)
    except KeyboardInterrupt:
        return _fail(error_line("interrupted", "stopped by Ctrl-C"), INTERRUPTED.code)
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)  # nothing more can be written where stdout went
        os.dup2(devnull, sys.stdout.fileno())
        return BROKEN_PIPE.code
