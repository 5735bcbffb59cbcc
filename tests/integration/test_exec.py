"""POST /v1/exec/run against real containers (docs/protocol.md 3.2), on both paths: each test runs
with containers started with ``fastExec`` off ("exec": a docker exec per command) and on
("channel": the resident command channel), and every answer says which path ran it."""

from __future__ import annotations

import base64
import os
import resource
import time
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import docker
import httpx
import pytest

from docker_runner_client import (
    Conflict,
    ExecOptions,
    ExecResult,
    ExecTimeout,
    HttpDockerRunnerClient,
    NotFound,
    StartedContainer,
    UpstreamError,
    ValidationFailed,
)
from tests.conftest import path_opts
from tests.support.background import in_background
from tests.support.ps import processes
from tests.support.server import TEST_SECRET, RunningServer, make_settings, running_runner
from tests.support.signed import error_of, signed_request
from tests.support.waiting import wait_for

pytestmark = pytest.mark.docker


class PathCheckingClient:
    """The runner's client, whose exec runs must answer the path their container asks for (a tty:
    always docker exec)."""

    def __init__(self, inner: HttpDockerRunnerClient, exec_path: str) -> None:
        self._inner = inner
        self.exec_path = exec_path

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def exec_run(
        self, container_id: str, command: str | Sequence[str], options: ExecOptions | None = None
    ) -> ExecResult:
        result = self._inner.exec_run(container_id, command, options)
        expected = "exec" if options is not None and options.tty else self.exec_path
        assert result.path == expected, (result.path, expected)
        return result


@pytest.fixture
def client(runner: RunningServer, exec_path: str) -> Iterator[Any]:
    with HttpDockerRunnerClient(runner.url, TEST_SECRET) as runner_client:
        yield PathCheckingClient(runner_client, exec_path)


@pytest.fixture
def container(client: Any, exec_path: str) -> Iterator[StartedContainer]:
    """A running busybox container with fastExec as the path asks, removed afterwards."""
    started: StartedContainer = client.start_container(path_opts(exec_path))
    try:
        yield started
    finally:
        client.remove_container(started.container_id, force=True)


def test_string_command_runs_in_a_shell(client: HttpDockerRunnerClient, container: StartedContainer) -> None:
    result = client.exec_run(container.container_id, "echo out; echo err >&2; exit 7")
    assert (result.stdout, result.stderr, result.exit_code, result.truncated) == ("out\n", "err\n", 7, False)
    assert result.duration_ms is not None and result.duration_ms >= 0


def test_array_command_runs_as_given(client: HttpDockerRunnerClient, container: StartedContainer) -> None:
    result = client.exec_run(container.container_id, ["echo", "a  b", "$HOME"])
    assert (result.stdout, result.exit_code) == ("a  b $HOME\n", 0)


def test_env_workdir_and_user(client: HttpDockerRunnerClient, container: StartedContainer) -> None:
    options = ExecOptions(env={"FOO": "bar baz"}, workdir="/tmp", user="nobody")
    result = client.exec_run(container.container_id, 'echo "$FOO"; pwd; id -u', options)
    assert result.stdout == "bar baz\n/tmp\n65534\n"


def test_env_names_and_programs_are_taken_as_given(client: HttpDockerRunnerClient, container: StartedContainer) -> None:
    """A variable whose name starts with a dash is a variable, not an option of anything; a program
    whose name holds ``=`` is looked up as a program (and not found)."""
    options = ExecOptions(env={"-i": "1", "A": "x"})
    result = client.exec_run(container.container_id, ["env"], options)
    assert {"-i=1", "A=x"} <= set(result.stdout.splitlines()), result
    missing = client.exec_run(container.container_id, ["A=1", "echo", "ran"])
    assert missing.exit_code == 126 and "ran" not in missing.stdout, missing  # not found, as the runtime says


def test_a_program_that_is_not_there_is_126_with_the_runtimes_words(
    client: HttpDockerRunnerClient, container: StartedContainer
) -> None:
    result = client.exec_run(container.container_id, ["no-such-program", "x"])
    assert result.exit_code == 126, result
    assert "executable file not found" in result.stdout + result.stderr, result
    in_a_shell = client.exec_run(container.container_id, "no-such-program x")
    assert in_a_shell.exit_code == 127, in_a_shell  # the shell's own answer, on both paths


def test_a_command_that_interrupts_itself_dies_of_it(
    client: HttpDockerRunnerClient, container: StartedContainer
) -> None:
    """SIGINT keeps its default action in the command, as under docker exec (a shell hands the
    commands it starts in the background SIGINT and SIGQUIT ignored, for good)."""
    result = client.exec_run(container.container_id, "kill -INT $$; echo survived")
    assert (result.stdout, result.exit_code) == ("", 130), result
    assert client.exec_run(container.container_id, "echo next").stdout == "next\n"


def test_a_command_that_signals_its_own_group_ends_alone(
    client: HttpDockerRunnerClient, container: StartedContainer
) -> None:
    """``kill 0`` (a common EXIT trap) reaches the command's own process group only: its answer is
    its own death by SIGTERM, and the next command runs as usual."""
    result = client.exec_run(container.container_id, "trap 'kill 0' EXIT; echo done")
    assert (result.stdout, result.exit_code) == ("done\n", 143), result
    assert client.exec_run(container.container_id, "echo next").stdout == "next\n"


def test_stdin_reaches_the_process_then_eof(client: HttpDockerRunnerClient, container: StartedContainer) -> None:
    """stdin is written, then closed: cat ends on its own."""
    payload = bytes(range(256)) * 4096  # 1 MiB, every byte value
    result = client.exec_run(container.container_id, "wc -c; echo done", ExecOptions(stdin=payload))
    assert result.stdout.split() == [str(len(payload)), "done"]
    small = client.exec_run(container.container_id, ["cat"], ExecOptions(stdin="héllo\n".encode()))
    assert small.stdout == "héllo\n"


def test_empty_stdin_is_immediate_eof(client: HttpDockerRunnerClient, container: StartedContainer) -> None:
    assert client.exec_run(container.container_id, ["cat"], ExecOptions(stdin=b"")).stdout == ""


def test_zero_timeouts_mean_no_bound(client: HttpDockerRunnerClient, container: StartedContainer) -> None:
    """timeoutMs 0 and idleTimeoutMs 0: a silent 1.5 s command runs to its end."""
    options = ExecOptions(timeout_ms=0, idle_timeout_ms=0)
    result = client.exec_run(container.container_id, "sleep 1.5; echo done", options)
    assert (result.stdout, result.exit_code) == ("done\n", 0)


def test_bounds_of_years_are_accepted(runner: RunningServer, container: StartedContainer, exec_path: str) -> None:
    """A "forever" bound (JavaScript's largest safe integer) runs the command like any other."""
    forever = 2**53 - 1
    body = {"containerId": container.container_id, "command": "echo done", "options": {"timeoutMs": forever}}
    body_idle = {**body, "options": {"idleTimeoutMs": forever}}
    for request in (body, body_idle):
        response = signed_request(runner.url, "POST", "/v1/exec/run", json_body=request, timeout=30)
        assert (response.status_code, response.json()["stdout"]) == (200, "done\n")
        assert response.json()["path"] == exec_path


def test_exec_works_past_descriptor_1024(
    client: HttpDockerRunnerClient, container: StartedContainer, docker_api: docker.APIClient
) -> None:
    """With the runner's descriptors numbered past 1024 (a busy runner), exec runs and timeouts still work."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 1200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
    fillers = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
    try:
        assert client.exec_run(container.container_id, "echo high").stdout == "high\n"
        with pytest.raises(ExecTimeout):
            client.exec_run(container.container_id, "sleep 7771", ExecOptions(timeout_ms=300))
        assert "sleep 7771" not in processes(docker_api, container.container_id)
    finally:
        for fd in fillers:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_undecodable_output_is_replaced(client: HttpDockerRunnerClient, container: StartedContainer) -> None:
    result = client.exec_run(container.container_id, r"printf 'ok \377\376 é'")
    assert result.stdout == "ok \ufffd\ufffd é"


def test_tty_merges_streams(client: HttpDockerRunnerClient, container: StartedContainer) -> None:
    result = client.exec_run(container.container_id, "echo out; echo err >&2", ExecOptions(tty=True))
    assert result.stdout.replace("\r\n", "\n") == "out\nerr\n" and result.stderr == ""


TREE = "sleep {n}1 & setsid sleep {n}2 & (sleep {n}3 &); echo started; echo warn >&2; sleep {n}4"


def _tree(tag: int) -> tuple[str, list[str]]:
    return TREE.format(n=tag), [f"sleep {tag}{index}" for index in range(1, 5)]


def test_total_timeout_kills_the_whole_tree(
    client: HttpDockerRunnerClient, container: StartedContainer, docker_api: docker.APIClient
) -> None:
    """A timeout answers 504 with the partial output, after every process of the command is gone;
    the container keeps running."""
    command, sleepers = _tree(771)
    started = time.monotonic()
    with pytest.raises(ExecTimeout) as caught:
        client.exec_run(container.container_id, command, ExecOptions(timeout_ms=1000))
    elapsed = time.monotonic() - started
    error = caught.value
    assert (error.status_code, error.code, error.message) == (504, "exec_timeout", "Exec timed out after 1000ms")
    assert (error.stdout, error.stderr, error.retryable) == ("started\n", "warn\n", False)
    assert elapsed >= 1.0
    remaining = processes(docker_api, container.container_id)
    assert not [s for s in sleepers if s in remaining], remaining
    assert client.inspect_container(container.container_id)["State"]["Running"]


def test_idle_timeout_fires_after_silence(
    client: HttpDockerRunnerClient, container: StartedContainer, docker_api: docker.APIClient
) -> None:
    """Output resets the idle clock; silence past idleTimeoutMs ends the run with exec_idle_timeout."""
    command = "for i in 1 2 3 4 5; do echo tick$i; sleep 0.3; done; sleep 7771"
    with pytest.raises(ExecTimeout) as caught:
        client.exec_run(container.container_id, command, ExecOptions(idle_timeout_ms=1000))
    assert caught.value.code == "exec_idle_timeout"
    assert caught.value.message == "Exec idle timed out after 1000ms"
    assert caught.value.stdout == "".join(f"tick{i}\n" for i in range(1, 6))
    assert "sleep 7771" not in processes(docker_api, container.container_id)


def test_kill_on_timeout_false_leaves_the_process(
    client: HttpDockerRunnerClient, container: StartedContainer, docker_api: docker.APIClient
) -> None:
    with pytest.raises(ExecTimeout):
        client.exec_run(container.container_id, "sleep 7772", ExecOptions(timeout_ms=300, kill_on_timeout=False))
    assert "sleep 7772" in processes(docker_api, container.container_id)


def test_output_flood_is_bounded(client: HttpDockerRunnerClient, container: StartedContainer) -> None:
    """256 MiB of output keeps the last maxOutputBytes and does not grow the runner's memory with it."""
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    options = ExecOptions(max_output_bytes=1024 * 1024)
    result = client.exec_run(container.container_id, "head -c 268435456 /dev/zero; echo; echo tail-marker", options)
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before) / 1024
    assert result.truncated and result.exit_code == 0
    assert len(result.stdout.encode()) == 1024 * 1024 and result.stdout.endswith("\ntail-marker\n")
    assert grown_mib < 64, f"the process grew by {grown_mib:.0f} MiB"


def test_max_output_above_the_ceiling_is_refused(client: HttpDockerRunnerClient, container: StartedContainer) -> None:
    with pytest.raises(ValidationFailed) as caught:
        client.exec_run(container.container_id, "true", ExecOptions(max_output_bytes=10**12))
    assert "options.maxOutputBytes" in caught.value.message


def test_missing_and_stopped_containers(client: HttpDockerRunnerClient, exec_path: str) -> None:
    with pytest.raises(NotFound) as missing:
        client.exec_run("does-not-exist-xyz", "true")
    assert missing.value.code == "no_such_container"
    stopped = client.start_container(path_opts(exec_path, auto_remove=False))
    try:
        client.stop_container(stopped.container_id, timeout_sec=0)
        with pytest.raises(Conflict) as caught:
            client.exec_run(stopped.container_id, "true")
        assert caught.value.code == "container_not_running"
    finally:
        client.remove_container(stopped.container_id, force=True)


def test_paused_container_is_not_running(
    client: HttpDockerRunnerClient, container: StartedContainer, docker_api: docker.APIClient
) -> None:
    """An exec in a paused container is 409 container_not_running, as docs/protocol.md 3.2 names it."""
    docker_api.pause(container.container_id)
    try:
        with pytest.raises(Conflict) as caught:
            client.exec_run(container.container_id, "true")
        assert caught.value.code == "container_not_running"
        assert "paused" in caught.value.message
    finally:
        docker_api.unpause(container.container_id)


def test_client_disconnect_kills_the_exec(
    runner: RunningServer, container: StartedContainer, docker_api: docker.APIClient, exec_path: str
) -> None:
    """When the HTTP client goes away mid-run, the exec's processes are killed."""
    body = {"containerId": container.container_id, "command": "sleep 7773"}
    with pytest.raises(httpx.ReadTimeout):
        signed_request(runner.url, "POST", "/v1/exec/run", json_body=body, timeout=1.0)
    wait_for(
        lambda: "sleep 7773" not in processes(docker_api, container.container_id),
        what="the exec to be killed after the client left",
    )


def test_shutdown_answers_an_exec_still_running(docker_api: docker.APIClient, exec_path: str) -> None:
    """A runner shutting down gives an exec its grace, then answers it 503 shutting_down with the
    output so far (not a bare 500) and kills its processes; the container keeps running."""
    with (
        running_runner(make_settings(shutdown_grace_seconds=2)) as server,
        HttpDockerRunnerClient(server.url, TEST_SECRET, max_retries=0) as client,
    ):
        box = client.start_container(path_opts(exec_path))
        try:
            with in_background(lambda: client.exec_run(box.container_id, "echo started; sleep 7772")) as run:
                wait_for(lambda: "sleep 7772" in processes(docker_api, box.container_id), what="the exec to run")
                server.stop()
                error = run.exception(timeout=30)
            assert isinstance(error, UpstreamError), error
            assert (error.status_code, error.code) == (503, "shutting_down")
            assert error.details["stdout"] == "started\n"
            assert "sleep 7772" not in processes(docker_api, box.container_id)
            assert docker_api.inspect_container(box.container_id)["State"]["Running"]
        finally:
            docker_api.remove_container(box.container_id, force=True)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"containerId": "x"}, "command"),
        ({"containerId": "x", "command": []}, "command"),
        ({"containerId": "x", "command": "true", "options": {"timeoutMs": -1}}, "options.timeoutMs"),
        ({"containerId": "x", "command": "true", "options": {"idleTimeoutMs": "soon"}}, "options.idleTimeoutMs"),
        ({"containerId": "x", "command": "true", "options": {"stdin": "%%%"}}, "options.stdin"),
        ({"containerId": "x", "command": "true", "options": {"bogus": 1}}, "bogus"),
        ({"containerId": "x", "command": "true", "extra": 1}, "extra"),
        ({"containerId": "x", "command": ["echo", "a\u0000b"]}, "command"),
        ({"containerId": "x", "command": "true", "options": {"env": {"K": "a\u0000b"}}}, "options.env"),
        ({"containerId": "x", "command": "true", "options": {"env": ["K=a\u0000b"]}}, "options.env"),
        ({"containerId": "x", "command": "true", "options": {"workdir": "/t\u0000mp"}}, "options.workdir"),
    ],
)
def test_bad_exec_bodies_name_the_field(runner: RunningServer, body: dict[str, object], field: str) -> None:
    response = signed_request(runner.url, "POST", "/v1/exec/run", json_body=body)
    error = error_of(response)
    assert (response.status_code, error["code"]) == (400, "validation_error")
    assert field in error["message"]


def test_exec_ids_are_resizable(client: HttpDockerRunnerClient, container: StartedContainer) -> None:
    """An exec id from a tty exec run can be resized; an unknown one is 404."""
    result = client.exec_run(container.container_id, "true", ExecOptions(tty=True))
    exec_id = str(result.extra["execId"])
    with pytest.raises((NotFound, Conflict)):
        # the exec has ended: the engine refuses to resize it, with its own status
        client.resize_exec(exec_id, 100, 30)
    with pytest.raises(NotFound):
        client.resize_exec("no-such-exec-" + uuid.uuid4().hex, 100, 30)


def test_stdin_is_base64_on_the_wire(runner: RunningServer, container: StartedContainer, exec_path: str) -> None:
    body = {
        "containerId": container.container_id,
        "command": ["cat"],
        "options": {"stdin": base64.b64encode(b"raw bytes").decode()},
    }
    response = signed_request(runner.url, "POST", "/v1/exec/run", json_body=body)
    assert (response.json()["stdout"], response.json()["path"]) == ("raw bytes", exec_path)


def test_an_exec_on_a_known_container_costs_only_the_engines_exec_calls(
    runner: RunningServer, client: HttpDockerRunnerClient, exec_path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No inspect before an exec of a container the runner knows by its full id: create, start and
    inspect of the exec only (through the lean client on the exec path); the exec's own create
    answers 409 for a stopped container, 404 for a gone one."""
    started = client.start_container(path_opts(exec_path, auto_remove=False))
    api = runner.runtime.engine.api()
    lean = runner.runtime.engine.lean
    assert lean is not None  # the test engine is on a unix socket
    paths: list[str] = []

    def record(response: object, *_args: object, **_kwargs: object) -> None:
        paths.append(f"{response.request.method} {response.request.path_url.split('?')[0]}")  # type: ignore[attr-defined]

    def recorded(name: str) -> object:
        call = getattr(lean, name)

        def recording(version: str, target: str, *rest: object) -> object:
            paths.append(f"lean {name} {target}")
            return call(version, target, *rest)

        return recording

    for name in ("exec_create", "exec_start", "exec_inspect"):
        monkeypatch.setattr(lean, name, recorded(name))
    api.hooks["response"].append(record)
    try:
        assert client.exec_run(started.container_id, ["echo", "hi"]).stdout == "hi\n"
        calls = [path.split("/v1.", 1)[-1].split("/", 1)[-1] for path in paths if "/exec" in path or "/json" in path]
        inspects = [call for call in calls if call == f"containers/{started.container_id}/json"]
        assert not inspects, paths  # (the reaper's and the gauges' own listings may come and go meanwhile)
        if exec_path == "exec":
            assert [path.split(" ")[1] for path in paths if path.startswith("lean")] == [
                "exec_create",
                "exec_start",
                "exec_inspect",
            ], paths
        else:
            assert any(call.endswith("/exec") for call in calls) and any(call.endswith("/start") for call in calls)
        client.stop_container(started.container_id, timeout_sec=0)
        with pytest.raises(Conflict) as stopped:
            client.exec_run(started.container_id, "true")
        assert stopped.value.code == "container_not_running"
        client.remove_container(started.container_id, force=True)
        with pytest.raises(NotFound) as gone:
            client.exec_run(started.container_id, "true")
        assert gone.value.code == "no_such_container"
    finally:
        api.hooks["response"].remove(record)
        client.remove_container(started.container_id, force=True)
