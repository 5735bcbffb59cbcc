"""How long a container that could not hold an exec channel is believed (exec/channel.py's
exit codes, exec/channels.py's book): an image without the tools for good, a full temporary
directory for a while, anything else not at all."""

from __future__ import annotations

import math
import os
import subprocess
from pathlib import Path

import pytest

from docker_runner.engine.sockets import Canceller
from docker_runner.exec import channels as channels_module
from docker_runner.exec.channel import DISPATCHER, PASSING_REFUSAL_SECONDS, remember_refusal_for
from docker_runner.exec.channels import ChannelBook


@pytest.mark.parametrize(
    ("exit_code", "seconds"),
    [(97, math.inf), (126, math.inf), (127, math.inf), (98, PASSING_REFUSAL_SECONDS), (1, 0.0), (None, 0.0)],
)
def test_each_exit_code_is_believed_for_its_time(exit_code: int | None, seconds: float) -> None:
    assert remember_refusal_for(exit_code) == seconds


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


def test_a_passing_refusal_is_asked_again_once_its_time_is_out(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = _Clock()
    monkeypatch.setattr(channels_module.time, "monotonic", clock.monotonic)
    book = ChannelBook(per_container=2, total=10)
    passing, lasting = ("a" * 64, ""), ("b" * 64, "")
    book._refuse(passing, PASSING_REFUSAL_SECONDS)
    book._refuse(lasting, math.inf)
    assert not book._reserve(passing) and not book._reserve(lasting)
    clock.now += PASSING_REFUSAL_SECONDS
    assert book._reserve(passing) and book.open == 1
    assert not book._reserve(lasting)


def _dispatch_with(tools: Path, dd: str | None) -> subprocess.CompletedProcess[bytes]:
    """The dispatcher run by this machine's sh, its stdin at once at its end, with ``dd`` (when
    given) a script of its own ahead of the machine's tools."""
    if dd is not None:
        (tools / "dd").write_text("#!/bin/sh\n" + dd)
        (tools / "dd").chmod(0o755)
    env = {"PATH": f"{tools}:{os.environ['PATH']}"}
    return subprocess.run(
        ["/bin/sh", "-c", DISPATCHER], stdin=subprocess.DEVNULL, capture_output=True, env=env, timeout=30
    )


def test_a_dd_without_count_bytes_is_a_lasting_refusal(tmp_path: Path) -> None:
    """A dd that refuses count_bytes would lose a command's stdin: the dispatcher refuses to start."""
    refusing = 'case "$*" in *count_bytes*) echo "dd: invalid input flag" >&2; exit 1 ;; esac\nexec /bin/dd "$@"\n'
    ended = _dispatch_with(tmp_path, refusing)
    assert ended.returncode == 97 and b"__docker_runner_ready" not in ended.stdout, ended
    assert remember_refusal_for(ended.returncode) == math.inf


def test_with_the_tools_it_needs_the_dispatcher_is_ready(tmp_path: Path) -> None:
    ended = _dispatch_with(tmp_path, None)
    assert ended.returncode == 0 and ended.stdout == b"__docker_runner_ready\n", ended


class _IdleChannel:
    """An idle channel whose ping the client leaves in the middle of."""

    def __init__(self, container_id: str) -> None:
        self.container_id = container_id
        self.user = ""
        self.closed = False
        self.idle_since = 0.0

    def alive(self) -> bool:
        return True

    def responsive(self, api: object, cancel: Canceller) -> bool:
        cancel.cancel()
        return False

    def close(self) -> None:
        self.closed = True


def test_a_client_that_leaves_during_a_ping_costs_one_channel_not_all() -> None:
    book = ChannelBook(per_container=4, total=10)
    key = ("c" * 64, "")
    idle = [_IdleChannel(key[0]) for _ in range(3)]
    for _ in idle:
        assert book._reserve(key)
    book._idle[key] = list(idle)  # type: ignore[arg-type]
    cancel = Canceller()
    try:
        assert book._take(object(), key, cancel) is None  # type: ignore[arg-type]
    finally:
        cancel.close()
    assert [channel.closed for channel in idle] == [False, False, True]
    assert book.open == 2 and len(book._idle[key]) == 2
