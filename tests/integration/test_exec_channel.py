"""What only the resident command channel has to prove (docs/protocol.md 3.2, "Paths"): background
processes that hold the output, a channel killed or restarted under a command, an image that cannot
hold a channel, several commands at once in one container. The semantics it shares with docker
exec are proven by tests/integration/test_exec.py, which runs on both paths."""

from __future__ import annotations

import contextlib
import io
import re
import tarfile
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import docker
import docker.errors
import httpx
import pytest

from docker_runner.exec import channel as channel_module
from docker_runner_client import (
    Conflict,
    ExecOptions,
    ExecTimeout,
    HttpDockerRunnerClient,
    StartedContainer,
    UpstreamError,
)
from tests.conftest import sleeper_opts
from tests.support.background import in_background
from tests.support.docker_env import SESSION_LABELS, TEST_IMAGE
from tests.support.ps import processes
from tests.support.server import TEST_SECRET, RunningServer, make_settings, running_runner
from tests.support.waiting import wait_for

pytestmark = pytest.mark.docker

# Kills every process of the channels (the dispatchers, their relays and their commands), as a
# container restart would, from an exec of the engine's own.
KILL_CHANNELS = r"""for d in /proc/[0-9]*; do
  if { tr '\000' '\n' < "$d/environ" | grep -q '^DOCKER_RUNNER_CHANNEL='; } 2>/dev/null; then
    kill -9 "${d#/proc/}" 2>/dev/null
  fi
done"""


@pytest.fixture
def fast_container(client: HttpDockerRunnerClient) -> Iterator[StartedContainer]:
    """A running busybox container with fastExec on, removed afterwards."""
    started = client.start_container(sleeper_opts(fast_exec=True))
    try:
        yield started
    finally:
        client.remove_container(started.container_id, force=True)


def _channel_processes(api: docker.APIClient, container_id: str) -> int:
    return len(_channel_pids(api, container_id))


def _channel_pids(api: docker.APIClient, container_id: str) -> list[str]:
    probe = (
        "for e in /proc/[0-9]*/environ; do"
        " tr '\\000' '\\n' <$e 2>/dev/null | grep -q '^DOCKER_RUNNER_CHANNEL=' && echo $e; done"
    )
    created = api.exec_create(container_id, ["sh", "-c", probe])
    return [path.split("/")[2] for path in api.exec_start(created["Id"]).decode().split()]


def test_a_background_process_holding_the_output_neither_stalls_nor_leaks(
    client: HttpDockerRunnerClient, fast_container: StartedContainer, docker_api: docker.APIClient
) -> None:
    """A command that leaves background processes holding its stdout and stderr is answered at its
    own end, they keep running, and what they write later is in no later command's output."""
    first = client.exec_run(
        fast_container.container_id,
        "sleep 7781 & (sleep 0.3; echo leak; echo leak >&2) & echo first",
    )
    assert (first.stdout, first.stderr, first.exit_code, first.path) == ("first\n", "", 0, "channel")
    assert "sleep 7781" in processes(docker_api, fast_container.container_id)
    for _ in range(3):  # past the writer's 0.3 s: it wrote (or died trying) while these ran
        later = client.exec_run(fast_container.container_id, "sleep 0.2; echo second; echo err >&2")
        assert (later.stdout, later.stderr, later.path) == ("second\n", "err\n", "channel")
    assert "sleep 7781" in processes(docker_api, fast_container.container_id)


def test_a_channel_killed_under_a_command_answers_retryable_then_is_replaced(
    runner: RunningServer, fast_container: StartedContainer, docker_api: docker.APIClient
) -> None:
    """The channel's processes killed mid-command: 503 exec_channel_lost, retryable, with the output
    so far (never an exit code); the next command gets a new channel."""
    with HttpDockerRunnerClient(runner.url, TEST_SECRET, max_retries=0) as client:
        assert client.exec_run(fast_container.container_id, "true").path == "channel"
        with in_background(lambda: client.exec_run(fast_container.container_id, "echo started; sleep 7791")) as run:
            wait_for(lambda: "sleep 7791" in processes(docker_api, fast_container.container_id), what="the command")
            killer = docker_api.exec_create(fast_container.container_id, ["sh", "-c", KILL_CHANNELS], user="0")
            docker_api.exec_start(killer["Id"])
            error = run.exception(timeout=60)
        assert isinstance(error, UpstreamError), error
        assert (error.status_code, error.code, error.retryable) == (503, "exec_channel_lost", True)
        assert error.details["stdout"] == "started\n"
        again = client.exec_run(fast_container.container_id, "echo again")
        assert (again.stdout, again.exit_code, again.path) == ("again\n", 0, "channel")


def test_a_channel_found_dead_only_when_its_command_is_sent_lets_it_run_with_docker_exec(
    client: HttpDockerRunnerClient,
    fast_container: StartedContainer,
    docker_api: docker.APIClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The dispatcher dies while idle and the runner does not see it before it sends a command (as
    in the moment between the death and the end of its stream): the command never began, so it is
    run with docker exec instead of answering exec_channel_lost; the next one gets a new channel."""
    assert client.exec_run(fast_container.container_id, "true").path == "channel"
    monkeypatch.setattr(channel_module.Channel, "alive", lambda self: True)  # the death goes unseen
    monkeypatch.setattr(channel_module, "PING_AFTER_IDLE_SECONDS", 3600.0)
    killer = docker_api.exec_create(fast_container.container_id, ["sh", "-c", KILL_CHANNELS], user="0")
    docker_api.exec_start(killer["Id"])
    wait_for(lambda: not _channel_pids(docker_api, fast_container.container_id), what="the channel to be gone")
    result = client.exec_run(fast_container.container_id, ["sh", "-c", "cat; echo ran"], ExecOptions(stdin=b"in "))
    assert (result.stdout, result.exit_code, result.path) == ("in ran\n", 0, "exec")
    again = client.exec_run(fast_container.container_id, "echo again")
    assert (again.stdout, again.path) == ("again\n", "channel")


def test_a_run_cut_before_its_command_began_is_killed_inside_the_channel(
    runner: RunningServer,
    client: HttpDockerRunnerClient,
    fast_container: StartedContainer,
    docker_api: docker.APIClient,
) -> None:
    """A timeout a millisecond in: the kill may reach the reader before the dispatcher has started
    the command, and finds nothing; it is sent again until the command is dead, so the channel
    survives (the fallback kill from outside would have let it go)."""
    container_id = fast_container.container_id
    assert client.exec_run(container_id, "true").path == "channel"
    book = runner.runtime.channels

    def idle_exec_ids() -> list[str]:
        return [channel.exec_id for channel in book._idle.get((container_id, ""), [])]

    first = idle_exec_ids()
    assert len(first) == 1
    for _ in range(5):
        with pytest.raises(ExecTimeout):
            client.exec_run(container_id, "sleep 7795", ExecOptions(timeout_ms=1))
        assert "sleep 7795" not in processes(docker_api, container_id)
        assert idle_exec_ids() == first  # the same channel, given back


def test_an_idle_channel_of_a_restarted_container_is_replaced(
    client: HttpDockerRunnerClient, docker_api: docker.APIClient
) -> None:
    """A container restarted between two commands: the second one runs in a new channel."""
    started = client.start_container(sleeper_opts(fast_exec=True, auto_remove=False))
    try:
        assert client.exec_run(started.container_id, "true").path == "channel"
        docker_api.restart(started.container_id, timeout=0)
        result = client.exec_run(started.container_id, "echo after")
        assert (result.stdout, result.exit_code, result.path) == ("after\n", 0, "channel")
    finally:
        client.remove_container(started.container_id, force=True)


@pytest.fixture(scope="module")
def image_without_sh(docker_api: docker.APIClient) -> Iterator[str]:
    """The test image without its /bin/sh (built here; no registry is needed), removed afterwards.
    Its busybox stays, so commands can still run as arrays. (A busybox sh finds its own base64
    applet even when /bin/base64 is deleted: the shell is what can be taken away.)"""
    tag = f"runner-test/no-sh:{uuid.uuid4().hex[:12]}"
    dockerfile = f'FROM {TEST_IMAGE}\nRUN ["/bin/busybox", "rm", "-f", "/bin/sh"]\n'.encode()
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        entry = tarfile.TarInfo("Dockerfile")
        entry.size = len(dockerfile)
        tar.addfile(entry, io.BytesIO(dockerfile))
    context.seek(0)
    log = list(docker_api.build(fileobj=context, custom_context=True, tag=tag, rm=True, labels=dict(SESSION_LABELS)))
    assert docker_api.images(name=tag), log
    try:
        yield tag
    finally:
        with contextlib.suppress(docker.errors.NotFound):
            docker_api.remove_image(tag, force=True)


def test_an_image_without_sh_falls_back_to_docker_exec(client: HttpDockerRunnerClient, image_without_sh: str) -> None:
    """fastExec on, but the image cannot hold a channel: the commands run with docker exec, correctly."""
    started = client.start_container(sleeper_opts(image=image_without_sh, fast_exec=True))
    command = ["busybox", "sh", "-c", "echo out; echo err >&2; exit 3"]
    try:
        for _ in range(2):  # the refusal is remembered: the second goes straight to docker exec
            result = client.exec_run(started.container_id, command)
            assert (result.stdout, result.stderr, result.exit_code, result.path) == ("out\n", "err\n", 3, "exec")
    finally:
        client.remove_container(started.container_id, force=True)


def test_commands_at_once_in_one_container_never_mix(
    runner: RunningServer, client: HttpDockerRunnerClient, fast_container: StartedContainer
) -> None:
    """Sixteen commands at once in one container, through several channels (at most the cap): each
    answer holds exactly its own output; the channels are in /metrics."""

    def run(index: int) -> tuple[int, str, str, int, str | None]:
        script = f"for i in 1 2 3 4 5; do echo out{index}-$i; echo err{index}-$i >&2; sleep 0.05; done; exit {index}"
        result = client.exec_run(fast_container.container_id, script)
        return index, result.stdout, result.stderr, result.exit_code, result.path

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(run, range(16)))
    for index, stdout, stderr, exit_code, _path in answers:
        assert stdout == "".join(f"out{index}-{i}\n" for i in range(1, 6))
        assert stderr == "".join(f"err{index}-{i}\n" for i in range(1, 6))
        assert exit_code == index
    assert {path for *_rest, path in answers} <= {"channel", "exec"}  # past the cap: docker exec
    open_here = runner.runtime.channels.open_in(fast_container.container_id)
    assert 1 < open_here <= runner.runtime.settings.fast_exec_channels
    gauge = re.search(r"^docker_runner_exec_channels_open (\S+)$", httpx.get(runner.url + "/metrics").text, re.M)
    assert gauge is not None and float(gauge.group(1)) >= open_here


def test_a_paused_container_with_an_idle_channel_is_not_running(
    client: HttpDockerRunnerClient,
    fast_container: StartedContainer,
    docker_api: docker.APIClient,
) -> None:
    """Paused right after a command, its channel idle only a moment: 409 container_not_running as
    with docker exec, and the command never runs later; once unpaused, commands run again."""
    assert client.exec_run(fast_container.container_id, "true").path == "channel"
    docker_api.pause(fast_container.container_id)
    try:
        with (
            HttpDockerRunnerClient(client.base_url, TEST_SECRET, timeout_ms=30_000, max_retries=0) as bounded,
            pytest.raises(Conflict) as caught,
        ):
            bounded.exec_run(fast_container.container_id, "touch /tmp/ran-while-paused")
        assert caught.value.code == "container_not_running"
        assert "paused" in caught.value.message
    finally:
        docker_api.unpause(fast_container.container_id)
    result = client.exec_run(fast_container.container_id, "ls /tmp/ran-while-paused 2>&1; echo after")
    assert result.stdout.endswith("No such file or directory\nafter\n") and result.path == "channel"


def test_a_runner_that_stops_lets_its_channels_go(docker_api: docker.APIClient) -> None:
    """The dispatchers end with the runner that started them: none is left in the container."""
    with running_runner(make_settings()) as server, HttpDockerRunnerClient(server.url, TEST_SECRET) as client:
        box = client.start_container(sleeper_opts(fast_exec=True, auto_remove=False))
        try:
            with ThreadPoolExecutor(3) as pool:
                paths = set(pool.map(lambda _: client.exec_run(box.container_id, "sleep 0.2").path, range(3)))
            assert paths == {"channel"}
            assert _channel_processes(docker_api, box.container_id) >= 1
            server.stop()
            wait_for(lambda: _channel_processes(docker_api, box.container_id) == 0, what="the channels to end")
        finally:
            docker_api.remove_container(box.container_id, force=True)


def test_a_stuck_idle_channel_is_let_go_for_a_new_one(
    client: HttpDockerRunnerClient,
    fast_container: StartedContainer,
    docker_api: docker.APIClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A dispatcher that stops answering (SIGSTOP) in a running container: the next command is not
    held by it for good; a new channel runs it."""
    monkeypatch.setattr(channel_module, "PING_AFTER_IDLE_SECONDS", 0.0)  # every idle channel is asked
    monkeypatch.setattr(channel_module, "STUCK_AFTER_SECONDS", 1.0)
    assert client.exec_run(fast_container.container_id, "true").path == "channel"
    stuck = _channel_pids(docker_api, fast_container.container_id)
    assert stuck
    docker_api.exec_start(docker_api.exec_create(fast_container.container_id, ["kill", "-STOP", *stuck])["Id"])
    with HttpDockerRunnerClient(client.base_url, TEST_SECRET, timeout_ms=30_000) as bounded:
        result = bounded.exec_run(fast_container.container_id, "echo served")
    assert (result.stdout, result.exit_code, result.path) == ("served\n", 0, "channel")


def test_at_the_runners_cap_the_channel_idle_longest_is_let_go(docker_api: docker.APIClient) -> None:
    """One channel in all: a second container's command takes it over instead of going without."""
    settings = make_settings(fast_exec_max_channels=1)
    with running_runner(settings) as server, HttpDockerRunnerClient(server.url, TEST_SECRET) as client:
        first = client.start_container(sleeper_opts(fast_exec=True))
        second = client.start_container(sleeper_opts(fast_exec=True))
        try:
            assert client.exec_run(first.container_id, "echo one").path == "channel"
            assert _channel_processes(docker_api, first.container_id) >= 1
            result = client.exec_run(second.container_id, "echo two")
            assert (result.stdout, result.path) == ("two\n", "channel")
            wait_for(lambda: _channel_processes(docker_api, first.container_id) == 0, what="the first channel to end")
            assert client.exec_run(first.container_id, "echo back").path == "channel"
        finally:
            for box in (first, second):
                client.remove_container(box.container_id, force=True)
