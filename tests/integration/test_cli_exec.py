"""``docker-runner-client`` exec, run and test, as real subprocesses against a real runner."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import docker
import pytest

from docker_runner_client import HttpDockerRunnerClient, StartedContainer
from tests.conftest import sleeper_opts
from tests.support.cli import cli, text
from tests.support.docker_env import TEST_IMAGE
from tests.support.server import RunningServer
from tests.support.waiting import wait_for

pytestmark = pytest.mark.docker


def test_exec_splits_the_streams_and_passes_the_exit_code(runner: RunningServer, container: StartedContainer) -> None:
    """stdout to stdout, stderr to stderr, the command's exit code as the CLI's; --env and --workdir reach it."""
    script = 'echo "out $GREETING $(pwd)"; echo err >&2; exit 7'
    args = ["exec", "--env", "GREETING=hi", "--workdir", "/tmp", container.container_id, "sh", "-c", script]
    assert text(cli(runner.url, *args)) == (7, "out hi /tmp\n", "err\n")
    assert text(cli(runner.url, "exec", container.container_id, "--", "true")) == (0, "", "")
    code, stdout, _ = text(cli(runner.url, "exec", "--json", container.container_id, "sh", "-c", "echo j; exit 3"))
    result = json.loads(stdout)
    assert (code, result["stdout"], result["exitCode"]) == (3, "j\n", 3)


def test_exec_stdin_from_a_file_or_this_stdin(
    runner: RunningServer, container: StartedContainer, tmp_path: Path
) -> None:
    """--stdin FILE and --stdin - feed the command."""
    source = tmp_path / "input.txt"
    source.write_bytes(b"from a file\n")
    assert text(cli(runner.url, "exec", "--stdin", str(source), container.container_id, "cat"))[:2] == (
        0,
        "from a file\n",
    )
    piped = cli(runner.url, "exec", "--stdin", "-", container.container_id, "wc", "-c", stdin=b"12345")
    assert (piped.returncode, piped.stdout.split()) == (0, [b"5"])
    missing = text(cli(runner.url, "exec", "--stdin", str(tmp_path / "none"), container.container_id, "cat"))
    assert missing[0] == 2 and missing[2].startswith("docker-runner-client: local_file: ")


def test_exec_timeout_prints_the_output_so_far_and_exits_124(
    runner: RunningServer, container: StartedContainer
) -> None:
    """--timeout is in seconds: past it the command is killed, its output so far printed, exit 124."""
    code, stdout, stderr = text(
        cli(runner.url, "exec", "--timeout", "1", container.container_id, "sh", "-c", "echo before; sleep 30")
    )
    assert (code, stdout) == (124, "before\n")
    assert stderr.splitlines()[-1].startswith("docker-runner-client: exec_timeout: ")


def test_run_once_in_a_fresh_container(runner: RunningServer, docker_api: docker.APIClient, tmp_path: Path) -> None:
    """run: stdin, a file put first, the exit code passed through; past --timeout 124; nothing left."""
    (tmp_path / "data.txt").write_text("file content\n")
    args = ["run", "--stdin", "-", "--file", f"data.txt={tmp_path / 'data.txt'}", "--workdir", "/work", TEST_IMAGE]
    done = cli(runner.url, *args, "sh", "-c", "cat; cat data.txt; echo oops >&2; exit 5", stdin=b"from stdin\n")
    assert text(done) == (5, "from stdin\nfile content\n", "oops\n")
    code, stdout, stderr = text(cli(runner.url, "run", "--timeout", "1", TEST_IMAGE, "sh", "-c", "echo a; sleep 30"))
    assert (code, stdout) == (124, "a\n")
    assert stderr.startswith("docker-runner-client: timed_out: ")
    label = f"dev.docker-runner.instance={runner.settings.instance}"
    wait_for(
        lambda: not docker_api.containers(all=True, filters={"label": label}), timeout=30, what="the runs' cleanup"
    )


def _tar(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def test_test_with_a_directory_patch(runner: RunningServer, tmp_path: Path) -> None:
    """A directory is the patch (modes kept); with --pristine only the difference travels, deletions
    included; the exit code is the tests'."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "run_tests.sh").write_text("echo ran; ls /testbed; exit 3\n")
    (work / "tool.sh").write_text("echo tool\n")
    (work / "tool.sh").chmod(0o700)
    done = cli(runner.url, "test", TEST_IMAGE, "--patch", str(work), "--test-cmd", "sh /testbed/run_tests.sh")
    assert text(done)[:2] == (3, "ran\nrun_tests.sh\ntool.sh\n")
    modes = cli(runner.url, "test", TEST_IMAGE, "--patch", str(work), "--test-cmd", "stat -c %a /testbed/tool.sh")
    assert text(modes)[:2] == (0, "700\n")

    pristine = tmp_path / "pristine"
    pristine.mkdir()
    (pristine / "run_tests.sh").write_text("echo ran; ls /testbed; exit 3\n")
    (pristine / "old.txt").write_text("gone in the work tree\n")
    args = ["test", "--json", TEST_IMAGE, "--patch", str(work), "--pristine", str(pristine)]
    code, stdout, _ = text(cli(runner.url, *args, "--test-cmd", "ls /testbed"))
    assert (code, json.loads(stdout)["testOutput"]) == (0, "tool.sh\n")  # only the new file; nothing else there


def test_test_with_a_tar_patch(runner: RunningServer, tmp_path: Path) -> None:
    """A tar file, or a tar on stdin, goes as it is; past --timeout the exit code is 124."""
    patch = tmp_path / "patch.tar.gz"
    patch.write_bytes(_tar({"run_tests.sh": b"echo from the tar; exit 4\n"}))
    assert text(cli(runner.url, "test", TEST_IMAGE, "--patch", str(patch)))[:2] == (4, "from the tar\n")
    piped = cli(runner.url, "test", TEST_IMAGE, "--patch", "-", stdin=patch.read_bytes())
    assert text(piped)[:2] == (4, "from the tar\n")
    slow = patch.with_name("slow.tar.gz")
    slow.write_bytes(_tar({"run_tests.sh": b"echo started; sleep 30\n"}))
    code, stdout, stderr = text(cli(runner.url, "test", TEST_IMAGE, "--patch", str(slow), "--timeout", "1"))
    assert (code, stdout) == (124, "started\n") and "timed_out" in stderr
    assert cli(runner.url, "test", TEST_IMAGE, "--patch", str(tmp_path / "none")).returncode == 2


def test_exec_failures_have_their_exit_codes(runner: RunningServer, client: HttpDockerRunnerClient) -> None:
    """exec in a missing container is 103, in a stopped one 104 (container_not_running), one line each."""
    code, _, stderr = text(cli(runner.url, "exec", "no-such-container-here", "true"))
    assert code == 103 and stderr.startswith("docker-runner-client: no_such_container: ") and stderr.count("\n") == 1
    stopped = client.start_container(sleeper_opts(auto_remove=False))
    try:
        client.stop_container(stopped.container_id, timeout_sec=0)
        code, _, stderr = text(cli(runner.url, "exec", stopped.container_id, "true"))
        assert code == 104 and stderr.startswith("docker-runner-client: container_not_running: ")
    finally:
        client.remove_container(stopped.container_id, force=True)
