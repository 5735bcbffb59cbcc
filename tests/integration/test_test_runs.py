"""Test runs from a patch (POST/PUT /v1/test) and one-shot runs (POST /v1/run), fresh containers."""

from __future__ import annotations

import asyncio
import base64
import gzip
import io
import json
import tarfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest

from docker_runner.containers.spec import MANAGED_LABEL, ONESHOT_LABEL
from docker_runner.errors import ApiError
from docker_runner.runtime import Runtime
from docker_runner.settings import Settings
from docker_runner.workloads import runs as workloads
from docker_runner_client import DockerRunnerError, HttpDockerRunnerClient, UpstreamError, changed_files
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
    """The patch lands in /testbed, the default command runs it, its exit code decides."""
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
    """A timeout kills the tests and still answers 200 with timedOut and the output so far."""
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


def _member(
    name: str, kind: bytes = tarfile.REGTYPE, link: str = "", data: bytes = b"", mode: int = 0o644
) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    info.size = len(data)
    info.mode = mode
    return info


def _chained(archive: tarfile.TarFile) -> None:
    archive.addfile(_member("a/b", tarfile.SYMTYPE, ".."))
    archive.addfile(_member("c", tarfile.SYMTYPE, "a/b/.."))
    archive.addfile(_member("c/etc/x"), io.BytesIO(b""))


HOSTILE = {
    "chained symlinks": (_chained, "c/etc/x"),
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
    """400 naming the entry, on both the JSON and the raw-tar route; no container was made."""
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
    """Too large (contents, or headers alone, or a small gzip of a huge pax header) or not a tar: 400."""
    with running_runner(make_settings(max_patch_bytes=1000)) as server:
        target = f"/v1/test?image={TEST_IMAGE}"
        big = _tar(lambda a: a.addfile(_member("big", data=b"x" * 2000), io.BytesIO(b"x" * 2000)))
        response = signed_request(server.url, "PUT", target, content=big)
        assert response.status_code == 400 and error_of(response)["details"]["entry"] == "big"
        headers_only = _tar(_three_empty_files)
        response = signed_request(server.url, "PUT", target, content=headers_only)
        assert response.status_code == 400 and error_of(response)["details"]["entry"] == "empty1"
        bomb = gzip.compress(_tar(lambda a: a.addfile(_pax_member("x", comment="x" * 20_000_000), io.BytesIO(b""))))
        response = signed_request(server.url, "PUT", target, content=bomb)
        assert response.status_code == 400 and "extended header" in error_of(response)["message"], response.text
        broken = signed_request(server.url, "PUT", target, content=b"not a tar at all" * 100)
        assert broken.status_code == 400 and "tar" in error_of(broken)["message"]
        assert not _instance_containers(docker_api, server)


def _three_empty_files(archive: tarfile.TarFile) -> None:
    for index in range(3):
        archive.addfile(_member(f"empty{index}"))


def _pax_member(name: str, **records: str) -> tarfile.TarInfo:
    info = _member(name)
    info.pax_headers = records
    return info


def test_client_disconnect_removes_the_container(runner: RunningServer, docker_api: docker.APIClient) -> None:
    """A client that leaves mid-run takes the container with it."""
    tar = _tar(lambda a: a.addfile(_member("run_tests.sh", data=b"sleep 120\n"), io.BytesIO(b"sleep 120\n")))
    with pytest.raises(httpx.ReadTimeout):
        signed_request(runner.url, "PUT", f"/v1/test?image={TEST_IMAGE}", content=tar, timeout=1.5)
    _none_left(docker_api, runner)


def test_runner_shutdown_removes_the_container(docker_api: docker.APIClient) -> None:
    """A runner stopping mid-run removes the run's container (a managed one-shot container)."""
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
            (container_id,) = wait_for(lambda: _instance_containers(docker_api, server), what="the test run to start")
            labels = docker_api.inspect_container(container_id)["Config"]["Labels"]
            assert (labels[MANAGED_LABEL], labels[ONESHOT_LABEL]) == ("true", "true")
        finally:
            server.stop()
        worker.join(timeout=30)
    assert not worker.is_alive() and outcome, "the run did not end when the runner shut down"
    (error,) = outcome
    assert isinstance(error, UpstreamError), error  # answered before the grace ran out, not cut
    assert (error.status_code, error.code, error.retryable) == (503, "shutting_down", True)
    assert not _instance_containers(docker_api, server)


def test_one_shot_run_in_a_fresh_container(
    runner: RunningServer, client: HttpDockerRunnerClient, docker_api: docker.APIClient
) -> None:
    """stdin, files, a workdir, array commands and a timeout, each in a fresh container."""
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


def test_json_test_run_with_a_base64_patch(runner: RunningServer, docker_api: docker.APIClient) -> None:
    """POST /v1/test: the patch as base64 (gzip too), the answer in full, the container gone."""
    script = b"echo from json; test -x /testbed/run_tests.sh && echo executable\n"

    def build(archive: tarfile.TarFile) -> None:
        archive.addfile(_member("run_tests.sh", data=script, mode=0o755), io.BytesIO(script))

    patch = base64.b64encode(gzip.compress(_tar(build))).decode()
    response = signed_request(runner.url, "POST", "/v1/test", json_body={"image": TEST_IMAGE, "patchTarBase64": patch})
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer == {**answer, "exitCode": 0, "testOutput": "from json\nexecutable\n", "timedOut": False}
    assert (answer["truncated"], answer["pooled"]) == (False, False) and answer["elapsedMs"] >= 0
    _none_left(docker_api, runner)


def test_long_paths_land_in_the_work_directory(runner: RunningServer, client: HttpDockerRunnerClient) -> None:
    """A name past 100 bytes travels in a pax record: it is re-rooted like any other, not put at /."""
    deep = "d" * 60 + "/" + "e" * 60 + "/file.txt"
    result = client.run_tests(TEST_IMAGE, {deep: b"deep"}, test_cmd=f"cat /testbed/{deep} && test ! -e /{deep}")
    assert (result.exit_code, result.test_output) == (0, "deep")


def test_modes_and_symlinks_reach_the_container(
    runner: RunningServer, client: HttpDockerRunnerClient, tmp_path: Path
) -> None:
    """What changed_files finds (an exec bit, a file turned symlink) is what the tests see."""
    pristine, work = tmp_path / "pristine", tmp_path / "work"
    for root in (pristine, work):
        root.mkdir()
        (root / "tool").write_text("#!/bin/sh\necho old\n")
        (root / "config").write_text("a file")
    (work / "tool").write_text("#!/bin/sh\necho tool ran\n")
    (work / "tool").chmod(0o755)
    (work / "config").unlink()
    (work / "config").symlink_to("tool")
    changes = changed_files(work, pristine)
    result = client.run_tests(
        TEST_IMAGE, changes.modified, removed_files=changes.removed, test_cmd="cd /testbed && ./tool && readlink config"
    )
    assert (result.exit_code, result.test_output) == (0, "tool ran\ntool\n")


def test_test_runs_go_through_the_create_policy(docker_api: docker.APIClient, tmp_path: Path) -> None:
    """A fresh test-run (or one-shot) container is created like any other: the policy can refuse it."""
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps({"images": ["allowed/*"]}))
    with (
        running_runner(make_settings(policy_path=policy)) as server,
        HttpDockerRunnerClient(server.url, TEST_SECRET, max_retries=0) as client,
    ):
        for attempt in (lambda: client.run_tests(TEST_IMAGE, PASSING), lambda: client.run(TEST_IMAGE, "true")):
            with pytest.raises(DockerRunnerError) as caught:
                attempt()
            assert (caught.value.status_code, caught.value.code) == (403, "policy_denied")
        assert not _instance_containers(docker_api, server)


@pytest.fixture(scope="module")
def small_output_runner(docker_api: docker.APIClient) -> Iterator[RunningServer]:
    """A runner keeping 64 bytes of output, whose default test command comes from DOCKER_RUNNER_TEST_CMD."""
    environ = {"DOCKER_RUNNER_SHARED_SECRET": TEST_SECRET, "DOCKER_RUNNER_TEST_CMD": "cd /testbed && sh custom.sh 2>&1"}
    test_cmd = Settings.from_env(environ).test_cmd
    with running_runner(make_settings(test_cmd=test_cmd, max_output_bytes=64)) as server:
        yield server


def test_the_default_test_command_is_configurable(small_output_runner: RunningServer) -> None:
    """DOCKER_RUNNER_TEST_CMD replaces `sh run_tests.sh` for runs that name no command."""
    with HttpDockerRunnerClient(small_output_runner.url, TEST_SECRET) as client:
        result = client.run_tests(TEST_IMAGE, {"custom.sh": b"echo custom ran\n", "run_tests.sh": b"exit 9\n"})
    assert (result.exit_code, result.test_output) == (0, "custom ran\n")


def test_output_past_the_limit_is_truncated_to_its_tail(small_output_runner: RunningServer) -> None:
    """Both answers say truncated, and keep the last bytes (where a test runner prints its summary)."""
    noisy = "seq 1 1000; echo summary"
    with HttpDockerRunnerClient(small_output_runner.url, TEST_SECRET) as client:
        test = client.run_tests(TEST_IMAGE, {"custom.sh": noisy.encode()})
        run = client.run(TEST_IMAGE, noisy)
    assert test.truncated and len(test.test_output) <= 2 * 64 and test.test_output.endswith("1000\nsummary\n")
    assert run.truncated and len(run.stdout) <= 64 and run.stdout.endswith("1000\nsummary\n")
    response = signed_request(
        small_output_runner.url, "POST", "/v1/run", json_body={"image": TEST_IMAGE, "command": "echo short"}
    )
    assert response.json()["truncated"] is False


def test_a_container_still_being_created_at_shutdown_is_removed(docker_api: docker.APIClient) -> None:
    """Whether its request is cancelled mid-creation or shutdown begins meanwhile: nothing stays."""
    runtime = Runtime.create(make_settings())
    label = f"dev.docker-runner.instance={runtime.settings.instance}"
    try:
        outcomes = asyncio.run(_shutdown_during_creations(runtime))
    finally:
        runtime.engine.close()
    assert outcomes == ["cancelled", "shutting_down"]
    assert not docker_api.containers(all=True, filters={"label": label})


async def _shutdown_during_creations(runtime: Runtime) -> list[str]:
    runs = runtime.runs

    async def use() -> None:
        async with workloads.one_use_container(runs, TEST_IMAGE, 10_000):
            raise AssertionError("the run got a container although shutdown had begun")

    cancelled = asyncio.ensure_future(use())
    first = await _next_creation(runs, set())
    cancelled.cancel()  # the request went away (the client, or uvicorn at shutdown) mid-creation
    shut_out = asyncio.ensure_future(use())
    await _next_creation(runs, {first})
    assert not first.done(), "the first creation ended before the test could cancel its request"
    await workloads.shutdown(runs)
    outcomes = []
    for run in (cancelled, shut_out):
        try:
            await run
        except asyncio.CancelledError:
            outcomes.append("cancelled")
        except ApiError as error:
            outcomes.append(error.code)
    return outcomes


async def _next_creation(runs: workloads.OneUseRuns, known: set[asyncio.Task[Any]]) -> asyncio.Task[Any]:
    """The creation a run just started (checked at every turn of the loop: it takes far longer)."""
    deadline = time.monotonic() + 10
    while True:
        started = [task for task in runs.creations if task not in known and not task.done()]
        if started:
            return started[0]
        assert time.monotonic() < deadline, "no creation started"
        await asyncio.sleep(0)


def test_a_ready_made_tar_travels_as_it_is(client: HttpDockerRunnerClient, tmp_path: Path) -> None:
    """run_tests_tar sends a gzip tar (bytes, or a file streamed from disk) to PUT /v1/test unchanged."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        info = tarfile.TarInfo("run_tests.sh")
        script = b"echo from the tar; exit 4\n"
        info.size = len(script)
        archive.addfile(info, io.BytesIO(script))
    from_bytes = client.run_tests_tar(TEST_IMAGE, buffer.getvalue())
    assert (from_bytes.exit_code, from_bytes.test_output) == (4, "from the tar\n")
    patch = tmp_path / "patch.tar.gz"
    patch.write_bytes(buffer.getvalue())
    from_file = client.run_tests_tar(TEST_IMAGE, patch, test_cmd="cat /testbed/run_tests.sh")
    assert (from_file.exit_code, from_file.test_output) == (0, script.decode())
