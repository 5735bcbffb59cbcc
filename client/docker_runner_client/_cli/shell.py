"""``shell``: an interactive tty in a container, in the terminal you are in, over the exec WebSocket.

The terminal goes into raw mode (every key, Ctrl-C included, goes to the container; restored on
the way out, whatever happened), output bytes are written as they come, and the container's tty
follows this terminal's size: at the start and on every SIGWINCH. A thread forwards stdin and the
resizes; the main thread writes the output. Without a tty on stdin it works the same, minus the
raw mode: the end of stdin is the end of the shell's input.
"""

from __future__ import annotations

import argparse
import os
import select
import shutil
import signal
import sys
import termios
import threading
import tty
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from .._client import HttpDockerRunnerClient
from .._exceptions import DockerRunnerError
from .._routes import TERMINAL_SHELL
from .._ws import ExecSession
from . import args as values
from .commands import Commands, add_command

READ_BYTES = 65_536
_RESIZE, _STOP = b"r", b"s"


def register(commands: Commands) -> None:
    shell = add_command(
        commands,
        "shell",
        _shell,
        "an interactive shell in a container, in this terminal",
        "Open a tty exec in CONTAINER (/bin/sh, or --command run with /bin/sh -lc) in this terminal: "
        "raw mode, the window size follows. Exits with the shell's exit code.",
    )
    shell.add_argument("--command", metavar="CMD", help="a command line, run with /bin/sh -lc (default: /bin/sh)")
    shell.add_argument("--workdir", "-w", help="the working directory")
    shell.add_argument("--env", "-e", action="append", metavar="KEY=VALUE", help="an environment variable")
    shell.add_argument("container", metavar="CONTAINER")


def terminal_size(*fds: int) -> tuple[int, int]:
    """(columns, rows) of the first of ``fds`` that is a terminal; else $COLUMNS/$LINES or 80x24."""
    for fd in fds:
        try:
            size = os.get_terminal_size(fd)
        except OSError:
            continue
        if size.columns and size.lines:
            return size.columns, size.lines
    fallback = shutil.get_terminal_size()
    return fallback.columns, fallback.lines


@contextmanager
def raw_mode(fd: int) -> Iterator[None]:
    """The terminal on ``fd`` in raw mode for the block, as it was afterwards; nothing when ``fd``
    is not a terminal."""
    if not os.isatty(fd):
        yield
        return
    saved = termios.tcgetattr(fd)
    try:
        tty.setraw(fd, termios.TCSANOW)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


@contextmanager
def window_changes(wake_fd: int) -> Iterator[None]:
    """SIGWINCH, for the block, wakes the input thread through ``wake_fd``."""

    def changed(_signum: int, _frame: FrameType | None) -> None:
        os.write(wake_fd, _RESIZE)

    previous = signal.signal(signal.SIGWINCH, changed)
    try:
        yield
    finally:
        signal.signal(signal.SIGWINCH, previous)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class InputPump:
    """The thread that sends stdin bytes and window sizes to the session until told to stop."""

    def __init__(self, session: ExecSession, stdin_fd: int, size_fds: tuple[int, ...]) -> None:
        self._session = session
        self._stdin_fd: int | None = stdin_fd
        self._size_fds = size_fds
        self.wake_read, self.wake_write = os.pipe()
        self._thread = threading.Thread(target=self._run, name="shell-input", daemon=True)

    def start(self) -> None:
        self._session.resize(*terminal_size(*self._size_fds))
        self._thread.start()

    def stop(self) -> None:
        os.write(self.wake_write, _STOP)
        self._thread.join(timeout=5)
        os.close(self.wake_read)
        os.close(self.wake_write)

    def _run(self) -> None:
        try:
            while self._step():
                pass
        except DockerRunnerError:
            pass  # the session ended under us: the main thread reports how

    def _step(self) -> bool:
        """One wake-up: a resize, stdin bytes, the end of stdin; False once told to stop."""
        watched = [self.wake_read] if self._stdin_fd is None else [self.wake_read, self._stdin_fd]
        readable = _readable(watched)
        if self.wake_read in readable:
            wake = os.read(self.wake_read, 1024)
            if _STOP in wake:
                return False
            self._session.resize(*terminal_size(*self._size_fds))
        if self._stdin_fd is not None and self._stdin_fd in readable:
            data = os.read(self._stdin_fd, READ_BYTES)
            if data:
                self._session.send(data)
            else:
                self._stdin_fd = None
                self._session.close_stdin()
        return True


def _shell(client: HttpDockerRunnerClient, args: argparse.Namespace) -> int:
    command: str | list[str] = args.command or list(TERMINAL_SHELL)
    env = values.key_values(args.env, "--env") or None
    stdin_fd, stdout_fd = sys.stdin.fileno(), sys.stdout.fileno()
    sys.stdout.flush()
    with client.open_exec(args.container, command, tty=True, workdir=args.workdir, env=env) as session:
        pump = InputPump(session, stdin_fd, (stdin_fd, stdout_fd))
        with window_changes(pump.wake_write), raw_mode(stdin_fd):
            pump.start()
            try:
                for output in session:
                    _write_all(stdout_fd, output.data)
            finally:
                pump.stop()
        return session.exit_code if session.exit_code is not None else 0


def _readable(fds: list[int]) -> set[int]:
    """The descriptors of ``fds`` that can be read now, waiting until one can (poll: no limit of 1024)."""
    poller = select.poll()
    for fd in fds:
        poller.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)
    return {fd for fd, _mask in poller.poll()}
