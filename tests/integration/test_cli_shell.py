"""``docker-runner-client shell``: an interactive tty over the exec WebSocket, driven through a real pty."""

from __future__ import annotations

import fcntl
import os
import pty
import signal
import struct
import subprocess
import termios
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from docker_runner_client import StartedContainer
from tests.support.cli import CLI, OutputReader, cli, cli_env, text
from tests.support.server import RunningServer, running_runner
from tests.support.waiting import wait_for

pytestmark = pytest.mark.docker


def _set_size(fd: int, rows: int, columns: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))


@contextmanager
def _shell_in_a_pty(runner: RunningServer, *args: str) -> Iterator[tuple[subprocess.Popen[bytes], int, OutputReader]]:
    """The CLI with a pty (40 rows, 120 columns) as its stdin, stdout and stderr: (process, master, output)."""
    master, slave = pty.openpty()
    _set_size(slave, 40, 120)
    process = subprocess.Popen(
        [*CLI, "shell", *args],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=cli_env(runner.url),
        start_new_session=True,
    )
    os.close(slave)
    reader = OutputReader(master)
    try:
        yield process, master, reader
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)
        reader.ended.wait(timeout=10)
        os.close(master)


def _attributes(fd: int) -> list[object]:
    return termios.tcgetattr(fd)


def test_shell_in_a_pty_echo_resize_and_exit_code(runner: RunningServer, container: StartedContainer) -> None:
    """Typed keys reach a tty /bin/sh; its tty has this terminal's size at the start and after a
    SIGWINCH; `exit 3` is the CLI's exit code; the terminal's modes are restored afterwards."""
    with _shell_in_a_pty(runner, container.container_id) as (process, master, output):
        before = _attributes(master)
        os.write(master, b"stty size\r")
        seen = output.wait_for(b"40 120")
        assert _attributes(master) != before, "the terminal is in raw mode during the session"

        _set_size(master, 50, 132)
        process.send_signal(signal.SIGWINCH)

        def resized() -> bool:
            os.write(master, b"stty size\r")
            return b"50 132" in output.data[seen:]

        wait_for(resized, timeout=30, interval=0.5, what="the remote tty to take the new size")
        os.write(master, b"echo hello; exit 3\r")
        assert process.wait(timeout=30) == 3
        output.wait_for(b"\r\nhello\r\n")
        assert _attributes(master) == before


def test_shell_restores_the_terminal_when_the_session_fails(container: StartedContainer) -> None:
    """The runner goes away under a session: the CLI exits with one error line and the transport
    exit code, and the terminal is back in its own modes."""
    with running_runner() as own, _shell_in_a_pty(own, container.container_id) as (process, master, output):
        before = _attributes(master)
        os.write(master, b"echo ready-$((6 * 7))\r")
        output.wait_for(b"ready-42")
        assert _attributes(master) != before
        own.stop()
        assert process.wait(timeout=60) == 106, output.data[-500:]
        output.wait_for(b"docker-runner-client: runner_")
        assert _attributes(master) == before


def test_shell_without_a_tty_reads_stdin_to_its_end(runner: RunningServer, container: StartedContainer) -> None:
    """Piped stdin (no raw mode) is the shell's input; its end ends the shell, --command runs a line."""
    code, stdout, _ = text(cli(runner.url, "shell", container.container_id, stdin=b"echo piped-$((2 + 2))\nexit 4\n"))
    assert code == 4 and "piped-4" in stdout
    code, stdout, _ = text(cli(runner.url, "shell", "--command", "echo from-command; exit 6", container.container_id))
    assert code == 6 and "from-command" in stdout


def test_shell_on_a_missing_container_says_not_found(runner: RunningServer) -> None:
    """A refused upgrade is one line on stderr and the not-found exit code."""
    code, stdout, stderr = text(cli(runner.url, "shell", "no-such-container-here"))
    assert (code, stdout) == (103, "")
    assert stderr.startswith("docker-runner-client: no_such_container: ") and stderr.count("\n") == 1
