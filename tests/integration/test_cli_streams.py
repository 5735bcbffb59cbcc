"""``docker-runner-client`` cp, logs and events, as real subprocesses against a real runner."""

from __future__ import annotations

import io
import json
import signal
import subprocess
import tarfile
import time
import uuid
from pathlib import Path

import pytest

from docker_runner_client import HttpDockerRunnerClient, StartedContainer
from tests.conftest import sleeper_opts
from tests.support.cli import CLI, OutputReader, cli, cli_env, text
from tests.support.docker_env import SESSION_LABELS
from tests.support.server import RunningServer

pytestmark = pytest.mark.docker


def test_cp_out_of_a_container(runner: RunningServer, container: StartedContainer, tmp_path: Path) -> None:
    """CONTAINER:FILE to a new name, CONTAINER:DIR into an existing directory, and the raw tar to stdout."""
    box = container.container_id
    assert cli(runner.url, "cp", f"{box}:/etc/hostname", str(tmp_path / "name")).returncode == 0
    assert (tmp_path / "name").read_text() == box[:12] + "\n"
    into = tmp_path / "into"
    into.mkdir()
    code, _, stderr = text(cli(runner.url, "cp", f"{box}:/etc", str(into)))
    assert code == 0, stderr
    assert (into / "etc" / "passwd").read_text().startswith("root:")
    renamed = tmp_path / "renamed"
    assert cli(runner.url, "cp", f"{box}:/etc", str(renamed)).returncode == 0
    assert (renamed / "hostname").is_file()
    raw = cli(runner.url, "cp", f"{box}:/etc/hostname", "-")
    with tarfile.open(fileobj=io.BytesIO(raw.stdout)) as archive:
        assert archive.getnames() == ["hostname"]
    code, _, stderr = text(cli(runner.url, "cp", f"{box}:/no/such/path", str(tmp_path / "x")))
    assert code == 103 and stderr.startswith("docker-runner-client: no_such_path: ")


def test_cp_into_a_container(
    runner: RunningServer, client: HttpDockerRunnerClient, container: StartedContainer, tmp_path: Path
) -> None:
    """A local file or directory lands by its name in CONTAINER:DIR; a tar from stdin is extracted there."""
    box = container.container_id
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "top.txt").write_text("top\n")
    (tree / "sub" / "deep.txt").write_text("deep\n")
    assert cli(runner.url, "cp", str(tree), f"{box}:/tmp").returncode == 0
    assert cli(runner.url, "cp", str(tree / "top.txt"), f"{box}:/").returncode == 0
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        info = tarfile.TarInfo("piped.txt")
        info.size = 6
        archive.addfile(info, io.BytesIO(b"piped\n"))
    assert cli(runner.url, "cp", "-", f"{box}:/tmp", stdin=buffer.getvalue()).returncode == 0
    found = client.exec_run(box, "cat /tmp/tree/top.txt /tmp/tree/sub/deep.txt /top.txt /tmp/piped.txt")
    assert (found.exit_code, found.stdout) == (0, "top\ndeep\ntop\npiped\n")
    assert cli(runner.url, "cp", str(tree), str(tmp_path / "other")).returncode == 2  # two local paths


def test_logs_split_the_streams_and_follow_to_the_end(runner: RunningServer, client: HttpDockerRunnerClient) -> None:
    """logs: stdout to stdout, stderr to stderr, --tail, --json; -f goes on until the container ends."""
    script = "echo one; echo two >&2; while [ ! -e /tmp/go ]; do sleep 0.05; done; echo three"
    started = client.start_container(sleeper_opts(cmd=["sh", "-c", script]))
    box = started.container_id
    try:
        with subprocess.Popen(
            [*CLI, "logs", "-f", box], env=cli_env(runner.url), stdout=subprocess.PIPE, stderr=subprocess.PIPE
        ) as follow:
            try:
                assert follow.stdout is not None and follow.stderr is not None
                followed = OutputReader(follow.stdout.fileno())
                followed.wait_for(b"one\n")
                assert text(cli(runner.url, "logs", box)) == (0, "one\n", "two\n")
                lines = text(cli(runner.url, "logs", "--json", box))[1].splitlines()
                chunks = [json.loads(line) for line in lines]
                assert {(chunk["stream"], chunk["data"]) for chunk in chunks} == {
                    ("stdout", "one\n"),
                    ("stderr", "two\n"),
                }
                tail = text(cli(runner.url, "logs", "--tail", "1", "--json", box))[1].splitlines()
                assert len(tail) == 1 and json.loads(tail[0]) in chunks
                client.exec_run(box, "touch /tmp/go")
                assert follow.wait(timeout=60) == 0
                followed.ended.wait(timeout=10)
                assert followed.data == b"one\nthree\n" and follow.stderr.read() == b"two\n"
            finally:
                if follow.poll() is None:
                    follow.kill()
    finally:
        client.remove_container(box, force=True)


def test_events_between_two_times(runner: RunningServer, client: HttpDockerRunnerClient) -> None:
    """events --since/--until prints the container's create, start and destroy, filtered by label;
    --json gives the engine's events, one per line."""
    case = {**SESSION_LABELS, "cli-events": uuid.uuid4().hex[:10]}
    since = str(int(time.time()) - 1)
    started = client.start_container(sleeper_opts(labels=case))
    client.remove_container(started.container_id, force=True)
    until = str(int(time.time()) + 1)
    label = f"label=cli-events={case['cli-events']}"
    code, stdout, _ = text(cli(runner.url, "events", "--since", since, "--until", until, "--filter", label))
    actions = [line.split()[2] for line in stdout.splitlines()]
    assert code == 0 and {"create", "start", "destroy"} <= set(actions), stdout
    assert all(started.container_id[:12] in line for line in stdout.splitlines())
    args = ["events", "--json", "--since", since, "--until", until, "--filter", label, "--filter", "event=start"]
    lines = text(cli(runner.url, *args))[1].splitlines()
    assert [(json.loads(line)["Action"], json.loads(line)["id"]) for line in lines] == [("start", started.container_id)]


def test_events_follow_until_interrupted(runner: RunningServer, client: HttpDockerRunnerClient) -> None:
    """Without --until, events go on (from --since, then live) and never end by themselves; Ctrl-C
    ends the command with 130."""
    case = {**SESSION_LABELS, "cli-events": uuid.uuid4().hex[:10]}
    filters = ["--filter", f"label=cli-events={case['cli-events']}", "--filter", "event=start"]
    started: StartedContainer | None = None
    with subprocess.Popen(
        [*CLI, "events", "--json", "--since", str(int(time.time()) - 1), *filters],
        env=cli_env(runner.url),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as follow:
        assert follow.stdout is not None
        output = OutputReader(follow.stdout.fileno())
        try:
            started = client.start_container(sleeper_opts(labels=case))
            output.wait_for(started.container_id.encode(), timeout=30)
            assert follow.poll() is None
            follow.send_signal(signal.SIGINT)
            assert follow.wait(timeout=30) == 130
        finally:
            if follow.poll() is None:
                follow.kill()
            if started is not None:
                client.remove_container(started.container_id, force=True)
