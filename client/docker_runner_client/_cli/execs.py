"""``exec``, ``run`` and ``test``: a command to its end, in a container, a fresh one, or a test run."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from .._client import HttpDockerRunnerClient
from .._exceptions import ExecTimeout
from .._models import ExecOptions, RunResult, TestResult
from .._patches import FileChanges, changed_files
from . import args as values
from .commands import Commands, add_command
from .exits import ERROR, TIMEOUT, CliError
from .output import emit_json

TIMEOUT_HELP = "bound the command to this many seconds (a float; 0 or absent: none); past it: exit 124"


def register(commands: Commands) -> None:
    run_exec = add_command(
        commands,
        "exec",
        _exec,
        "run a command in a container; exits with its exit code",
        "Run CMD (an argument list, as docker exec takes it: use sh -c '...' for a shell line) in "
        "CONTAINER to its end. Its stdout goes to stdout, its stderr to stderr, its exit code is "
        "this command's. Past --timeout it is killed: what it printed so far is printed, exit 124.",
    )
    run_exec.add_argument("--timeout", type=values.seconds, metavar="SECONDS", help=TIMEOUT_HELP)
    run_exec.add_argument(
        "--idle-timeout", type=values.seconds, metavar="SECONDS", help="bound the silence between outputs"
    )
    run_exec.add_argument("--stdin", metavar="FILE", help="feed the command this file (- for this stdin)")
    run_exec.add_argument("--workdir", "-w", help="the working directory")
    run_exec.add_argument("--env", "-e", action="append", metavar="KEY=VALUE", help="an environment variable")
    run_exec.add_argument("--user", "-u", help="the user to run as")
    run_exec.add_argument("container", metavar="CONTAINER")
    run_exec.add_argument("command", nargs=argparse.REMAINDER, metavar="CMD", help="the command and its arguments")
    run_once = add_command(
        commands,
        "run",
        _run,
        "run a command once in a fresh container of an image",
        "Run CMD (an argument list) once in a container of IMAGE used only for it (from the image's "
        "pool when the runner has one); the container is removed afterwards. Exits as the command "
        "did; past --timeout, 124 with the output so far.",
    )
    run_once.add_argument("--timeout", type=values.seconds, metavar="SECONDS", help=TIMEOUT_HELP)
    run_once.add_argument("--stdin", metavar="FILE", help="feed the command this file (- for this stdin)")
    run_once.add_argument("--workdir", "-w", help="the working directory")
    run_once.add_argument("--file", action="append", metavar="PATH=LOCAL", help="put a local file at PATH first")
    run_once.add_argument("image", metavar="IMAGE")
    run_once.add_argument("command", nargs=argparse.REMAINDER, metavar="CMD", help="the command and its arguments")
    _register_test(commands)


def _register_test(commands: Commands) -> None:
    test = add_command(
        commands,
        "test",
        _test,
        "apply a patch in a fresh container of an image and run its tests",
        "Apply a patch in the work directory of a fresh container of IMAGE and run the test command; "
        "prints the tests' output and exits with their exit code (124 past --timeout). The patch is "
        "a directory (its files, or with --pristine only what differs from that copy, deletions "
        "included), or a tar file sent as it is (plain, gzip, bzip2 or xz; - reads it from stdin).",
    )
    test.add_argument("--patch", required=True, metavar="DIR_OR_TAR", help="the patch: a directory, a tar, or -")
    test.add_argument("--pristine", metavar="DIR", help="with a directory patch: send only what differs from DIR")
    test.add_argument("--test-cmd", metavar="CMD", help="the test command line (default: the runner's)")
    test.add_argument(
        "--timeout", type=values.seconds, metavar="SECONDS", help="bound the tests (default 300; 0: none)"
    )
    test.add_argument("--workdir", "-w", help="the work directory (default /testbed)")
    test.add_argument("--remove", action="append", metavar="PATH", help="delete this path (relative) first")
    test.add_argument("image", metavar="IMAGE")


def _write(stdout: str, stderr: str) -> None:
    sys.stdout.write(stdout)
    sys.stdout.flush()
    sys.stderr.write(stderr)
    sys.stderr.flush()


def exec_options(args: argparse.Namespace) -> ExecOptions:
    """The options an ``exec`` command line asks for (reads --stdin)."""
    return ExecOptions(
        workdir=args.workdir,
        env=values.key_values(args.env, "--env") or None,
        timeout_ms=values.milliseconds(args.timeout) or 0,
        idle_timeout_ms=values.milliseconds(args.idle_timeout) or 0,
        user=args.user,
        stdin=None if args.stdin is None else values.read_bytes(args.stdin),
    )


def _exec(client: HttpDockerRunnerClient, args: argparse.Namespace) -> int:
    command = values.command(args.command, "exec")
    try:
        result = client.exec_run(args.container, command, exec_options(args))
    except ExecTimeout as timeout:
        if args.json:
            emit_json({"stdout": timeout.stdout, "stderr": timeout.stderr, "exitCode": None, "timedOut": True})
        else:
            _write(timeout.stdout, timeout.stderr)
        raise
    if args.json:
        emit_json(result)
    else:
        _write(result.stdout, result.stderr)
    return result.exit_code


def _files(pairs: list[str] | None) -> dict[str, bytes] | None:
    local = values.key_values(pairs, "--file")
    return {path: values.read_bytes(source) for path, source in local.items()} or None


def _run(client: HttpDockerRunnerClient, args: argparse.Namespace) -> int:
    command = values.command(args.command, "run")
    stdin = None if args.stdin is None else values.read_bytes(args.stdin)
    result = client.run(
        args.image,
        command,
        stdin=stdin,
        files=_files(args.file),
        workdir=args.workdir,
        timeout_ms=values.milliseconds(args.timeout),
    )
    if args.json:
        emit_json(result)
    else:
        _write(result.stdout, result.stderr)
    return _outcome(result, args.timeout)


def _outcome(result: RunResult | TestResult, timeout: float | None) -> int:
    """The exit code of a run or test run; a timeout or a container that died is a CliError."""
    if result.timed_out:
        bound = "its timeout" if timeout is None else f"{timeout:g} s"
        raise CliError("timed_out", f"the command ran past {bound} and was killed", TIMEOUT)
    if result.exit_code is None:
        raise CliError("no_exit_code", "the container ended before the command did", ERROR)
    return result.exit_code


def directory_patch(patch: Path, pristine: Path | None) -> FileChanges:
    """A directory as a patch: every file of it, or only what differs from ``pristine``."""
    if pristine is not None:
        return changed_files(patch, pristine)
    with tempfile.TemporaryDirectory() as empty:
        return changed_files(patch, empty)


def _run_tests(client: HttpDockerRunnerClient, args: argparse.Namespace) -> TestResult:
    source = Path(args.patch)
    if args.patch != values.STDIN and source.is_dir():
        try:
            changes = directory_patch(source, None if args.pristine is None else Path(args.pristine))
        except (OSError, ValueError) as exc:
            raise CliError("bad_patch", str(exc)) from None
        return client.run_tests(
            args.image,
            changes.modified,
            test_cmd=args.test_cmd,
            timeout=args.timeout,
            workdir=args.workdir,
            removed_files=[*changes.removed, *(args.remove or [])],
        )
    if args.pristine is not None:
        raise CliError("bad_argument", "--pristine goes with a directory patch, not a tar")
    tar = values.read_bytes(values.STDIN) if args.patch == values.STDIN else _existing(source)
    return client.run_tests_tar(
        args.image,
        tar,
        test_cmd=args.test_cmd,
        timeout=args.timeout,
        workdir=args.workdir,
        removed_files=args.remove or [],
    )


def _test(client: HttpDockerRunnerClient, args: argparse.Namespace) -> int:
    result = _run_tests(client, args)
    if args.json:
        emit_json(result)
    else:
        sys.stdout.write(result.test_output)
        sys.stdout.flush()
    return _outcome(result, args.timeout)


def _existing(path: Path) -> Path:
    if not path.is_file():
        raise CliError("local_file", f"{path} is neither a directory nor a tar file")
    return path
