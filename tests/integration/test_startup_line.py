"""The console script, started as a newcomer starts it: it says where it listens and which engine it reached."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import docker
import pytest

from tests.support.server import TEST_SECRET

pytestmark = pytest.mark.docker

LINE = re.compile(r"listening on http://127\.0\.0\.1:(\d+), engine (\S+) \(API (\S+)\)")


def _read_line_matching(process: subprocess.Popen[str], pattern: re.Pattern[str], timeout: float) -> re.Match[str]:
    assert process.stderr is not None
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        if not line:
            break
        seen.append(line)
        if found := pattern.search(line):
            return found
    raise AssertionError(f"no start-up line in {''.join(seen)!r}")


def test_the_runner_logs_its_address_and_engine(docker_api: docker.APIClient) -> None:
    """`docker-runner --port 0` logs `listening on http://127.0.0.1:PORT, engine VERSION (API VERSION)`."""
    environment = {key: value for key, value in os.environ.items() if not key.startswith("DOCKER_RUNNER_")}
    environment |= {"DOCKER_RUNNER_SHARED_SECRET": TEST_SECRET, "DOCKER_RUNNER_INSTANCE": "test-startup-line"}
    process = subprocess.Popen(
        [sys.executable, "-m", "docker_runner", "--port", "0"], env=environment, stderr=subprocess.PIPE, text=True
    )
    try:
        found = _read_line_matching(process, LINE, timeout=30)
        version = docker_api.version()
        assert (found.group(2), found.group(3)) == (version["Version"], version["ApiVersion"])
        assert int(found.group(1)) > 0
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
        assert process.stderr is not None
        process.stderr.close()
