"""Test runs from a patch (POST/PUT /v1/test) and one-shot runs (POST /v1/run), fresh containers."""

from __future__ import annotations

import base64
import io
import tarfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import docker
import httpx
import pytest

from docker_runner_client import HttpDockerRunnerClient, changed_files
from tests.support.docker_env import TEST_IMAGE
from tests.support.server import TEST_SECRET, RunningServer, make_settings, running_runner
from tests.support.signed import error_of, signed_request
from tests.support.waiting import wait_for

pytestmark = pytest.mark.docker

PASSING = {"run_tests.sh": b"echo collected 2 items; echo all passed\nexit 0\n"}
FAILING = {"run_tests.sh": b"echo 1 failed >&2\nexit 1\n"}


def _instance_containers(api: docker.APIClient, server: RunningServer) -> list[str]:
    label = f"dev.docker-runner.instance={server.settings.instance}"
    return [c["Id"] for c in api.containers(all=True, filters={"label": label})]


def _none_left(api: docker.APIClient, server: RunningServer) -> None:
    wait_for(lambda: not _instance_containers(api, server), timeout=20, what="the run's container to be removed")


def test_patch_applied_and_exit_code_decides(
    runner: RunningServer, client: HttpDockerRunnerClient, docker_api: docker.APIClient
) -> None:
    passed = client.run_tests(TEST_IMAGE, PASSING)
    assert (passed.exit_code, passed.passed, passed.timed_out, passed.pooled) == (0, True, False, False)
    assert passed.test_output == "collected 2 items\nall passed\n" and passed.elapsed_ms >= 0
    failed = client.run_tests(TEST_IMAGE, FAILING)
    assert (failed.exit_code, failed.passed, failed.test_output) == (1, False, "1 failed\n")
    _none_left(docker_api, runner)


def test_custom_command_workdir_and_removals(runner: RunningServer, client: HttpDockerRunnerClient) -> None:
    """Deletions are applied before extraction: a file can even become a directory."""
    result = client.run_tests(
        TEST_IMAGE,
        {"passwd/inner": b"now a directory"},
        workdir="/etc",
        removed_files=["group", "passwd"],
        test_cmd="test ! -e /etc/group && cat /etc/passwd/inner",
    )
    assert (result.exit_code, result.test_output) == (0, "now a directory")


def test_timeout_keeps_the_output_so_far(
    runner: RunningServer, client: HttpDockerRunnerClient, docker_api: docker.APIClient
) -> None:
    started = time.monotonic()
    result = client.run_tests(TEST_IMAGE, {"run_tests.sh": b"echo started\nsleep 60\n"}, timeout=1)
    assert time.monotonic() - started < 30
    assert (result.timed_out, result.exit_code, result.test_output) == (True, None, "started\n")
    _none_left(docker_api, runner)


def _tar(build: Callable[[tarfile.TarFile], None]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        build(archive)
    return buffer.getvalue()


def _member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "", data: bytes = b"") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    info.size = len(data)
    return info


HOSTILE = {
    "absolute": (lambda a: a.addfile(_member("/etc/passwd"), io.BytesIO(b"")), "/etc/passwd"),
    "dotdot": (lambda a: a.addfile(_member("../../escape"), io.BytesIO(b"")), "../../escape"),
    "symlink out": (lambda a: a.addfile(_member("link", tarfile.SYMTYPE, "/etc/shadow")), "link"),
    "relative symlink out": (lambda a: a.addfile(_member("sub/link", tarfile.SYMTYPE, "../../../etc")), "sub/link"),
    "hardlink out": (lambda a: a.addfile(_member("hard", tarfile.LNKTYPE, "../outside")), "hard"),
    "device": (lambda a: a.addfile(_member("sda", tarfile.BLKTYPE)), "sda"),
    "fifo": (lambda a: a.addfile(_member("pipe", tarfile.FIFOTYPE)), "pipe"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_tars_are_refused_before_any_container(
    runner: RunningServer, docker_api: docker.APIClient, case: str
) -> None:
    build, entry = HOSTILE[case]
    tar = _tar(build)
    body = {"image": TEST_IMAGE, "patchTarBase64": base64.b64encode(tar).decode()}
    for response in (
        signed_request(runner.url, "POST", "/v1/test", json_body=body),
        signed_request(runner.url, "PUT", f"/v1/test?image={TEST_IMAGE}", content=tar),
    ):
        error = error_of(response)
        assert (response.status_code, error["code"]) == (400, "validation_error")
        assert error["details"]["entry"] == entry and repr(entry) in error["message"]
    assert not _instance_containers(docker_api, runner)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"files": {"../escape": "eA=="}}, "files"),
        ({"files": {"ok.txt": "eA=="}, "maxOutputBytes": 1 << 60}, "maxOutputBytes"),
        ({"files": {"ok.txt": "not base64!"}}, "files.ok.txt"),
        ({"stdin": "not base64!"}, "stdin"),
    ],
)
def test_bad_one_shot_runs_are_400_before_any_container(
    runner: RunningServer, docker_api: docker.APIClient, changes: dict[str, object], field: str
) -> None:
    """(With files already turned into a tar when a later field fails: nothing of it may leak.)"""
    body = {"image": TEST_IMAGE, "command": "true", **changes}
    response = signed_request(runner.url, "POST", "/v1/run", json_body=body)
    error = error_of(response)
    assert (response.status_code, error["code"]) == (400, "validation_error")
    assert error["details"]["field"].startswith(field), error
    assert not _instance_containers(docker_api, runner)


def test_oversized_and_broken_archives(docker_api: docker.APIClient) -> None:
    with running_runner(make_settings(max_patch_bytes=1000)) as server:
        big = _tar(lambda a: a.addfile(_member("big", data=b"x" * 2000), io.BytesIO(b"x" * 2000)))
        response = signed_request(server.url, "PUT", f"/v1/test?image={TEST_IMAGE}", content=big)
        assert response.status_code == 400 and error_of(response)["details"]["entry"] == "big"
        broken = signed_request(server.url, "PUT", f"/v1/test?image={TEST_IMAGE}", content=b"not a tar at all" * 100)
        assert broken.status_code == 400 and "tar" in error_of(broken)["message"]
        assert not _instance_containers(docker_api, server)


def test_client_disconnect_removes_the_container(runner: RunningServer, docker_api: docker.APIClient) -> None:
    tar = _tar(lambda a: a.addfile(_member("run_tests.sh", data=b"sleep 120\n"), io.BytesIO(b"sleep 120\n")))
    with pytest.raises(httpx.ReadTimeout):
        signed_request(runner.url, "PUT", f"/v1/test?image={TEST_IMAGE}", content=tar, timeout=1.5)
    _none_left(docker_api, runner)


def test_runner_shutdown_removes_the_container(docker_api: docker.APIClient) -> None:
    outcome: list[BaseException | object] = []

    def run_until_the_runner_goes(client: HttpDockerRunnerClient) -> None:
        try:
            outcome.append(client.run_tests(TEST_IMAGE, {"run_tests.sh": b"sleep 120\n"}))
        except Exception as error:  # the runner went away mid-run: that is the point
            outcome.append(error)

    with (
        running_runner(make_settings()) as server,
        HttpDockerRunnerClient(server.url, TEST_SECRET, max_retries=0) as client,
    ):
        worker = threading.Thread(target=run_until_the_runner_goes, args=(client,))
        worker.start()
        try:
            wait_for(lambda: _instance_containers(docker_api, server), what="the test run to start")
        finally:
            server.stop()
        worker.join(timeout=30)
    assert not worker.is_alive() and outcome, "the run did not end when the runner shut down"
    assert not _instance_containers(docker_api, server)


def test_one_shot_run_in_a_fresh_container(
    runner: RunningServer, client: HttpDockerRunnerClient, docker_api: docker.APIClient
) -> None:
    result = client.run(
        TEST_IMAGE,
        "cat; echo; cat /w/data.txt; echo oops >&2; exit 3",
        stdin=b"input",
        files={"data.txt": b"file content"},
        workdir="/w",
    )
    assert (result.exit_code, result.stdout, result.stderr, result.pooled) == (
        3,
        "input\nfile content",
        "oops\n",
        False,
    )
    array = client.run(TEST_IMAGE, ["echo", "a b", "$HOME"])
    assert array.stdout == "a b $HOME\n"
    slow = client.run(TEST_IMAGE, "echo begun; sleep 30", timeout_ms=500)
    assert (slow.timed_out, slow.exit_code, slow.stdout) == (True, None, "begun\n")
    _none_left(docker_api, runner)


def test_changed_files_finds_what_travels(tmp_path: Path) -> None:
    pristine, work = tmp_path / "pristine", tmp_path / "work"
    for root in (pristine, work):
        (root / "pkg").mkdir(parents=True)
        (root / "same.py").write_text("unchanged")
        (root / "pkg" / "mod.py").write_text("old")
    (pristine / "gone.py").write_text("deleted later")
    (work / "pkg" / "mod.py").write_text("new")
    (work / "pkg" / "added.py").write_text("added")
    changes = changed_files(work, pristine)
    assert changes.modified == {"pkg/added.py": b"added", "pkg/mod.py": b"new"}
    assert changes.removed == ["gone.py"]
