"""The client's command line as a real subprocess, pointed at a runner by its environment."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import threading
import time
from collections.abc import Mapping

from tests.support.server import TEST_SECRET

CLI = [sys.executable, "-m", "docker_runner_client"]


def cli_env(url: str, secret: str = TEST_SECRET, **extra: str) -> dict[str, str]:
    """This process's environment without any DOCKER_RUNNER_*, then the runner's URL and secret."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("DOCKER_RUNNER_")}
    env.update({"DOCKER_RUNNER_URL": url, "DOCKER_RUNNER_SHARED_SECRET": secret, **extra})
    return env


def cli(
    url: str,
    *args: str,
    stdin: bytes | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[bytes]:
    """Run ``docker-runner-client ARGS`` to its end; stdout and stderr as bytes."""
    return subprocess.run(
        [*CLI, *args],
        input=stdin if stdin is not None else b"",
        env=dict(env) if env is not None else cli_env(url),
        capture_output=True,
        timeout=timeout,
        check=False,
    )


def text(done: subprocess.CompletedProcess[bytes]) -> tuple[int, str, str]:
    return done.returncode, done.stdout.decode(), done.stderr.decode()


class OutputReader:
    """Everything a file descriptor yields, collected by a thread, until it ends (EOF or EIO)."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._chunks: list[bytes] = []
        self._lock = threading.Lock()
        self.ended = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        poller = select.poll()  # not select(): a long test session may hold descriptors past 1024
        poller.register(self._fd, select.POLLIN | select.POLLHUP | select.POLLERR)
        try:
            while True:
                if not poller.poll(1000):
                    continue
                chunk = os.read(self._fd, 65_536)
                if not chunk:
                    return
                with self._lock:
                    self._chunks.append(chunk)
        except OSError:
            return  # EIO: the last holder of the pty's other end is gone
        finally:
            self.ended.set()

    @property
    def data(self) -> bytes:
        with self._lock:
            return b"".join(self._chunks)

    def wait_for(self, needle: bytes, timeout: float = 30, after: int = 0) -> int:
        """Wait until ``needle`` appears past offset ``after``; the offset just beyond it."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.data.find(needle, after)
            if found >= 0:
                return found + len(needle)
            if time.monotonic() > deadline or (self.ended.is_set() and self.data.find(needle, after) < 0):
                raise AssertionError(f"no {needle!r} in the output within {timeout}s: {self.data[-2000:]!r}")
            time.sleep(0.02)
