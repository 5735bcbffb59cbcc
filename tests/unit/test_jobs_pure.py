"""Jobs, the pure parts: output lines to events, the bounded buffer, resources, environment, the
create body, how a job ends, and the client's typed events."""

from __future__ import annotations

import asyncio
import json
import subprocess
from typing import Any

import pytest
from httpx_sse import ServerSentEvent

from docker_runner import units
from docker_runner.cluster.cluster import tidy_due
from docker_runner.engine import swarm
from docker_runner.errors import ApiError, Kind
from docker_runner.jobs import spec as job_spec
from docker_runner.jobs.events import EventBuffer, OutputLines, classify
from docker_runner.jobs.manager import Job, _Outcome, verdict
from docker_runner.jobs.stream import frames, resume_point
from docker_runner.protocol.demux import frame
from docker_runner.settings import Settings, SettingsError
from docker_runner_client import Job as ClientJob
from docker_runner_client import JobEventsDropped, JobLog, JobMessage, JobResources, JobUpdate
from docker_runner_client._sse import job_event

SECRET = "s" * 32
NEXT_SECRET = "n" * 32
GiB = 1024**3


def _settings(**changes: Any) -> Settings:
    return Settings(shared_secret=SECRET, instance="unit", **changes)


@pytest.mark.parametrize(
    ("stream", "line", "expected"),
    [
        ("stdout", b'{"a": 1}', {"type": "message", "message": {"a": 1}}),
        ("stdout", b'  {"nested": {"x": [1, null]}}  ', {"type": "message", "message": {"nested": {"x": [1, None]}}}),
        ("stdout", b"[1, 2]", {"type": "log", "stream": "stdout", "line": "[1, 2]"}),
        ("stdout", b'"text"', {"type": "log", "stream": "stdout", "line": '"text"'}),
        ("stdout", b"42", {"type": "log", "stream": "stdout", "line": "42"}),
        ("stdout", b'{"n": NaN}', {"type": "log", "stream": "stdout", "line": '{"n": NaN}'}),
        ("stdout", b'{"a": ', {"type": "log", "stream": "stdout", "line": '{"a": '}),
        ("stdout", b"plain \xc3\xbc", {"type": "log", "stream": "stdout", "line": "plain ü"}),
        ("stdout", b'{"bad": "\xff"}', {"type": "log", "stream": "stdout", "line": '{"bad": "\ufffd"}'}),
        ("stderr", b'{"a": 1}', {"type": "log", "stream": "stderr", "line": '{"a": 1}'}),
    ],
)
def test_lines_become_messages_or_logs(stream: str, line: bytes, expected: dict[str, Any]) -> None:
    kind, data = classify(stream, line)
    assert kind == expected["type"] and json.loads(data) == expected


def test_encoded_events_are_one_line_of_utf8() -> None:
    """Carriage returns and lone surrogates inside a message cannot break the SSE framing."""
    _, data = classify("stdout", b'{"t": "a\\rb\\nc", "s": "\\ud800", "u": "\xc3\xbc"}')
    assert "\r" not in data and "\n" not in data
    data.encode("utf-8")
    assert json.loads(data)["message"] == {"t": "a\rb\nc", "s": "\ud800", "u": "ü"}
    _, deep = classify("stdout", b"{" + b'"a":{' * 100_000 + b"}" * 100_001)
    assert json.loads(deep)["type"] == "log"


def test_output_lines_survive_any_split() -> None:
    """Frames cut anywhere, lines over several frames, a multi-byte character split in two."""
    raw = (
        frame(1, b'{"a":1}\nhal')
        + frame(2, b"err \xc3")
        + frame(1, b"f line\n")
        + frame(2, b"\xbc\n")
        + frame(1, b"tail without newline")
    )
    for size in (1, 3, 7, len(raw)):
        lines = OutputLines(max_line_bytes=1024)
        seen = [line for start in range(0, len(raw), size) for line in lines.feed(raw[start : start + size])]
        seen += lines.flush()
        assert seen == [
            ("stdout", b'{"a":1}'),
            ("stdout", b"half line"),
            ("stderr", b"err \xc3\xbc"),
            ("stdout", b"tail without newline"),
        ]


def test_overlong_lines_are_dropped_and_counted() -> None:
    lines = OutputLines(max_line_bytes=8)
    assert lines.feed(frame(1, b"x" * 5)) == []
    assert lines.feed(frame(1, b"x" * 5)) == []  # past 8 bytes without a newline: dropped
    assert lines.feed(frame(1, b"xx\nok\n")) == [("stdout", b"ok")]
    assert lines.overlong == 1


def test_an_overlong_line_arriving_whole_is_dropped_and_counted_too() -> None:
    """The limit holds for a complete line inside one frame, on either stream."""
    lines = OutputLines(max_line_bytes=8)
    assert lines.feed(frame(1, b"ok\n" + b"y" * 9 + b"\nfine\n") + frame(2, b"z" * 20 + b"\n")) == [
        ("stdout", b"ok"),
        ("stdout", b"fine"),
    ]
    assert lines.overlong == 2


def test_blank_output_lines_are_kept_as_log_lines() -> None:
    """A job's plain output keeps its blank lines: each one is a log event with an empty line."""
    lines = OutputLines(max_line_bytes=8)
    assert lines.feed(frame(1, b"a\n\nb\n") + frame(2, b"\r\n")) == [
        ("stdout", b"a"),
        ("stdout", b""),
        ("stdout", b"b"),
        ("stderr", b""),
    ]
    assert classify("stdout", b"") == ("log", '{"type":"log","stream":"stdout","line":""}')


def test_buffer_keeps_the_last_events_and_counts_the_rest() -> None:
    buffer = EventBuffer(max_events=3, max_bytes=1000)
    for index in range(1, 6):
        assert buffer.append(f"e{index}").seq == index
    assert (buffer.last_seq, buffer.dropped) == (5, 2)
    missed, events = buffer.after(0)
    assert missed == 2 and [event.data for event in events] == ["e3", "e4", "e5"]
    assert buffer.after(2) == (0, events)
    assert buffer.after(3) == (0, events[1:])
    assert buffer.after(5) == (0, [])
    assert buffer.after(99) == (0, [])


def test_buffer_is_bounded_in_bytes_but_keeps_the_newest() -> None:
    buffer = EventBuffer(max_events=100, max_bytes=10)
    buffer.append("aaaa")
    buffer.append("bbbb")
    buffer.append("c" * 50)
    assert buffer.after(0) == (2, [buffer.after(2)[1][0]]) and buffer.dropped == 2


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (64 * 1024**2, 64 * 1024**2),
        ("512m", 512 * 1024**2),
        ("2g", 2 * GiB),
        ("2GB", 2 * GiB),
        ("1.5g", int(1.5 * GiB)),
        ("6291456", 6 * 1024**2),
        ("100MiB", 100 * 1024**2),
    ],
)
def test_memory_sizes(value: str | int, expected: int) -> None:
    assert units.parse_memory(value) == expected


@pytest.mark.parametrize("value", ["lots", "", "-1m", "1x", "5m", 1024, True, "1e9"])
def test_bad_memory_sizes(value: str | int) -> None:
    with pytest.raises(ValueError):
        units.parse_memory(value)


def test_cpus_and_gpus() -> None:
    assert units.parse_cpus(2.0) == 2_000_000_000 and units.parse_cpus("0.5") == 500_000_000
    for bad in (0, -1, float("nan"), float("inf"), "many", 0.001):
        with pytest.raises(ValueError):
            units.parse_cpus(bad)
    assert units.parse_gpus("all") == "all" and units.parse_gpus(" ALL ") == "all"
    assert units.parse_gpus("0, 1") == ("0", "1") and units.parse_gpus(["GPU-abc"]) == ("GPU-abc",)
    assert units.parse_gpus("none") is None and units.parse_gpus("") is None and units.parse_gpus([]) is None
    for bad_gpus in ("0,,1", ["all", "0"], ["none"]):
        with pytest.raises(ValueError):
            units.parse_gpus(bad_gpus)


def test_job_settings_from_the_environment() -> None:
    settings = Settings.from_env({"DOCKER_RUNNER_SHARED_SECRET": SECRET})
    assert (settings.job_memory_bytes, settings.job_nano_cpus, settings.job_gpus) == (2 * GiB, 2_000_000_000, None)
    assert settings.job_env_passthrough == ()
    settings = Settings.from_env(
        {
            "DOCKER_RUNNER_SHARED_SECRET": SECRET,
            "DOCKER_RUNNER_JOB_MEMORY": "512m",
            "DOCKER_RUNNER_JOB_CPUS": "0.5",
            "DOCKER_RUNNER_JOB_GPUS": "0,1",
            "DOCKER_RUNNER_JOB_ENV_PASSTHROUGH": "HTTP_PROXY, UNSET_ONE",
            "HTTP_PROXY": "http://proxy:3128",
        }
    )
    assert (settings.job_memory_bytes, settings.job_nano_cpus, settings.job_gpus) == (
        512 * 1024**2,
        5 * 10**8,
        ("0", "1"),
    )
    assert settings.job_env_passthrough == (("HTTP_PROXY", "http://proxy:3128"),)
    assert "proxy:3128" not in repr(settings)


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"DOCKER_RUNNER_JOB_MEMORY": "lots"}, "DOCKER_RUNNER_JOB_MEMORY"),
        ({"DOCKER_RUNNER_JOB_CPUS": "0"}, "DOCKER_RUNNER_JOB_CPUS"),
        ({"DOCKER_RUNNER_JOB_GPUS": "all,0"}, "DOCKER_RUNNER_JOB_GPUS"),
        ({"DOCKER_RUNNER_JOB_ENV_PASSTHROUGH": "DOCKER_RUNNER_SHARED_SECRET"}, "DOCKER_RUNNER_JOB_ENV_PASSTHROUGH"),
        (
            {"DOCKER_RUNNER_JOB_ENV_PASSTHROUGH": "docker_runner_shared_secret_next"},
            "DOCKER_RUNNER_JOB_ENV_PASSTHROUGH",
        ),
        ({"DOCKER_RUNNER_JOB_ENV_PASSTHROUGH": "COPY", "COPY": SECRET}, "DOCKER_RUNNER_JOB_ENV_PASSTHROUGH"),
        (
            {
                "DOCKER_RUNNER_SHARED_SECRET_NEXT": NEXT_SECRET,
                "DOCKER_RUNNER_JOB_ENV_PASSTHROUGH": "COPY",
                "COPY": NEXT_SECRET,
            },
            "DOCKER_RUNNER_JOB_ENV_PASSTHROUGH",
        ),
        ({"DOCKER_RUNNER_JOB_BUFFER_EVENTS": "0"}, "DOCKER_RUNNER_JOB_BUFFER_EVENTS"),
    ],
)
def test_bad_job_settings_name_the_variable(env: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError, match=named):
        Settings.from_env({"DOCKER_RUNNER_SHARED_SECRET": SECRET, **env})


def test_environment_is_passthrough_then_request_never_the_secret() -> None:
    passed = (
        ("PROXY", "p"),
        ("SHARED", "x"),
        ("DOCKER_RUNNER_SHARED_SECRET", SECRET),
        ("COPY", SECRET),
        ("COPY_OF_NEXT", NEXT_SECRET),
    )
    settings = _settings(job_env_passthrough=passed, shared_secret_next=NEXT_SECRET)
    assert job_spec.job_env({"SHARED": "mine", "NEW": "1"}, settings) == ["PROXY=p", "SHARED=mine", "NEW=1"]
    with pytest.raises(ApiError) as invalid:
        job_spec.job_env({"A=B": "1"}, settings)
    assert invalid.value.details == {"field": "env.A=B"}


def test_create_body_of_a_job() -> None:
    request = job_spec.JobRequest(
        image="busybox",
        input={"x": 1},
        command="cat",
        env={"A": "1"},
        resources=job_spec.JobResources(memory="64m", gpus="none"),
        timeout_ms=30_000,
        labels={"team": "a", job_spec.JOB_LABEL: "spoofed"},
    )
    body = job_spec.build_job_body(request, "job1", _settings(job_gpus="all"))
    assert body["Cmd"] == ["/bin/sh", "-lc", "cat"] and body["Env"] == ["A=1"]
    assert (body["OpenStdin"], body["StdinOnce"], body["AttachStdin"], body["Tty"]) == (True, True, True, False)
    host = body["HostConfig"]
    assert (host["Memory"], host["MemorySwap"], host["NanoCpus"]) == (64 * 1024**2, 64 * 1024**2, 2_000_000_000)
    assert "DeviceRequests" not in host and host["AutoRemove"] is False and host["Init"] is True
    labels = body["Labels"]
    assert labels[job_spec.JOB_LABEL] == "job1" and labels["team"] == "a"
    assert labels["dev.docker-runner.managed"] == "true" and labels["dev.docker-runner.instance"] == "unit"
    assert labels["dev.docker-runner.ttl-seconds"] == str(30 + job_spec.REMOVE_AFTER_SLACK_SECONDS)
    defaults = job_spec.build_job_body(
        job_spec.JobRequest(image="busybox", input=None), "job2", _settings(job_gpus="all")
    )
    assert "Cmd" not in defaults and defaults["HostConfig"]["DeviceRequests"][0]["Count"] == -1


def test_resources_default_to_the_settings_and_each_is_overridden_alone() -> None:
    """No resources: the runner's memory (as memory+swap too) and CPUs; a job's cpus replaces only the CPUs."""
    settings = _settings(job_memory_bytes=512 * 1024**2, job_nano_cpus=1_500_000_000)
    host = job_spec.build_job_body(job_spec.JobRequest(image="busybox", input=None), "j", settings)["HostConfig"]
    assert (host["Memory"], host["MemorySwap"], host["NanoCpus"]) == (512 * 1024**2, 512 * 1024**2, 1_500_000_000)
    assert "DeviceRequests" not in host
    asked = job_spec.JobRequest(image="busybox", input=None, resources=job_spec.JobResources(cpus=0.25))
    host = job_spec.build_job_body(asked, "j", settings)["HostConfig"]
    assert (host["Memory"], host["NanoCpus"]) == (512 * 1024**2, 250_000_000)
    builtin = job_spec.build_job_body(job_spec.JobRequest(image="busybox", input=None), "j", _settings())["HostConfig"]
    assert (builtin["Memory"], builtin["MemorySwap"], builtin["NanoCpus"]) == (2 * GiB, 2 * GiB, 2_000_000_000)
    assert job_spec.input_line({"text": "two\nlines", "u": "ü"}) == '{"text":"two\\nlines","u":"ü"}\n'.encode()


def _job(timeout_ms: int = 1000) -> Job:
    request = job_spec.JobRequest(image="busybox", input=None)
    return Job("j", request, "c", timeout_ms, EventBuffer(10, 10_000))


@pytest.mark.parametrize(
    ("cancelled", "outcome", "state", "expected"),
    [
        (False, _Outcome(exited=True, exit_code=0), {"ExitCode": 0}, ("completed", 0, None)),
        (False, _Outcome(exited=True, exit_code=3), {"ExitCode": 3}, ("error", 3, "job_failed")),
        (False, _Outcome(timed_out=True), {"ExitCode": 137}, ("error", 137, "job_timeout")),
        (False, _Outcome(exited=True, exit_code=137), {"ExitCode": 137, "OOMKilled": True}, ("error", 137, "job_oom")),
        (True, _Outcome(), {"ExitCode": 137}, ("cancelled", 137, None)),
        (True, _Outcome(), {"Status": "created", "ExitCode": 0}, ("cancelled", None, None)),  # never started
        (
            False,
            _Outcome(failure=ApiError(Kind.INVALID, "bad_parameter", "no such executable")),
            None,
            ("error", None, "bad_parameter"),
        ),
        (False, _Outcome(timed_out=True), None, ("error", None, "job_timeout")),
        (False, _Outcome(), None, ("error", None, "job_lost")),
    ],
)
def test_how_a_job_ends(
    cancelled: bool, outcome: _Outcome, state: dict[str, Any] | None, expected: tuple[Any, ...]
) -> None:
    job = _job()
    job.cancel_requested = cancelled
    status, exit_code, error = verdict(job, outcome, state)
    assert (status, exit_code, None if error is None else error.code) == expected


def test_frames_replay_what_was_missed_then_end_with_the_job() -> None:
    async def collect(after: int) -> list[tuple[str | None, str | None]]:
        return [(message.id, message.data) async for message in frames(job, after, ping_seconds=60)]

    job = Job("j", job_spec.JobRequest(image="busybox", input=None), "c", 0, EventBuffer(3, 10_000))
    job.update("starting")
    job.update("running")
    job.record("stdout", b'{"a":1}')
    job.record("stderr", b"oops")
    job.update("completed", 0)
    assert (job.messages, job.logs, job.ended) == (1, 1, True)
    late = asyncio.run(collect(0))
    assert late[0] == (None, '{"type":"dropped","dropped":2}')
    assert [message_id for message_id, _ in late[1:]] == ["3", "4", "5"]
    assert json.loads(late[-1][1] or "")["status"] == "completed"
    assert asyncio.run(collect(4)) == late[-1:]
    assert asyncio.run(collect(5)) == []  # the final job_update seen: nothing more


def test_an_id_beyond_the_newest_resumes_from_the_newest() -> None:
    """Last-Event-ID past the newest event: an ended job sends its final job_update, a running one its
    newest event then the live ones, with no gap and no duplicate."""

    async def scenario() -> tuple[list[str | None], list[str | None]]:
        ended = _job()
        ended.update("starting")
        ended.update("completed", 0)
        from_ended = [message.id async for message in frames(ended, 99, ping_seconds=60)]
        running = _job()
        running.update("starting")
        running.update("running")
        stream = frames(running, 99, ping_seconds=60)
        first = await anext(stream)
        running.record("stdout", b"live")
        running.update("completed", 0)
        return from_ended, [first.id] + [message.id async for message in stream]

    from_ended, from_running = asyncio.run(scenario())
    assert from_ended == ["2"]
    assert from_running == ["2", "3", "4"]
    assert [resume_point(after, 5) for after in (0, 3, 5, 6, 10**30)] == [0, 3, 5, 4, 4]
    assert resume_point(7, 0) == 0


def _sse(data: dict[str, Any], event_id: str = "") -> ServerSentEvent:
    return ServerSentEvent(data=json.dumps(data), id=event_id)


def test_client_types_job_events_by_their_type() -> None:
    job = {"jobId": "j", "status": "error", "exitCode": 3, "error": {"code": "job_failed", "message": "m"}}
    update = job_event(_sse({"type": "job_update", **job}, "7"))
    assert isinstance(update, JobUpdate) and update.id == 7
    assert (update.status, update.exit_code, update.error and update.error.code) == ("error", 3, "job_failed")
    assert update.job.ended and isinstance(update.job, ClientJob)
    assert job_event(_sse({"type": "message", "message": {"a": 1}}, "2")) == JobMessage({"a": 1}, 2)
    assert job_event(_sse({"type": "log", "stream": "stderr", "line": "x"}, "3")) == JobLog("stderr", "x", 3)
    assert job_event(_sse({"type": "dropped", "dropped": 4})) == JobEventsDropped(4)
    assert job_event(_sse({"type": "something_new"})) is None
    assert job_event(ServerSentEvent(data="")) is None  # a ping
    assert JobResources(memory="64m", gpus=("0",)).to_json() == {"memory": "64m", "gpus": ["0"]}


# --- cluster mode: a placed job's command behind the line feeder ---


@pytest.mark.parametrize(
    ("body", "image", "argv"),
    [
        ({}, {"Entrypoint": ["/entry"], "Cmd": ["a"]}, ["/entry", "a"]),  # the image's own
        ({"Cmd": ["b"]}, {"Entrypoint": ["/entry"], "Cmd": ["a"]}, ["/entry", "b"]),  # a command: after its entrypoint
        ({"Cmd": ["b"]}, {"Cmd": ["a"]}, ["b"]),
        ({"Entrypoint": ["/e2"]}, {"Entrypoint": ["/entry"], "Cmd": ["a"]}, ["/e2"]),  # the engine drops the image Cmd
        ({}, {"Cmd": ["sh"]}, ["sh"]),
    ],
)
def test_a_placed_jobs_command_is_what_the_engine_would_run(
    body: dict[str, Any], image: dict[str, Any], argv: list[str]
) -> None:
    fed = job_spec.fed_one_line({"Image": "x", **body}, image)
    assert fed["Entrypoint"] == job_spec.LINE_FEEDER
    assert fed["Cmd"] == argv
    assert fed["Image"] == "x"


def test_a_placed_job_needs_a_command() -> None:
    with pytest.raises(ApiError) as caught:
        job_spec.fed_one_line({"Image": "x"}, {"Entrypoint": None, "Cmd": None})
    assert caught.value.status == 400
    assert "command" in caught.value.message


def test_the_line_feeder_gives_the_command_the_line_then_the_end_of_input() -> None:
    """Its stdin never ends (a Swarm task's): the command still gets exactly the line, then EOF, and
    its exit code is the job's."""
    line = job_spec.input_line({"text": 'a \\ b\t"c"', "n": [1, 2], "u": "é"})
    with subprocess.Popen(
        [*job_spec.LINE_FEEDER, "/bin/sh", "-c", "cat; echo end; exit 3"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    ) as feeder:
        assert feeder.stdin is not None and feeder.stdout is not None
        feeder.stdin.write(line)
        feeder.stdin.flush()  # and left open, as a task's stdin is
        output = feeder.stdout.read()
        assert feeder.wait(timeout=10) == 3
    assert output == line + b"end\n"


@pytest.mark.parametrize(
    ("stamp", "epoch"),
    [
        ("2026-12-02T14:00:00.123456789Z", 1796220000.123456789),
        ("2026-12-02T14:00:00Z", 1796220000.0),
        ("2026-12-02T15:00:00.5+01:00", 1796220000.5),
        ("", 0.0),
        ("yesterday", 0.0),
    ],
)
def test_swarm_times_with_nanoseconds_are_read(stamp: str, epoch: float) -> None:
    assert swarm.epoch_of(stamp) == pytest.approx(epoch, abs=1e-6)


def _task(state: str, changed_at: float) -> swarm.TaskView:
    return swarm.TaskView("t", "s", "n", "c", state, "shutdown", "", "", changed_at)


@pytest.mark.parametrize(
    ("labels", "tasks", "due"),
    [
        ({"dev.docker-runner.oneshot": "true"}, [_task("complete", 990.0)], True),
        ({"dev.docker-runner.oneshot": "true"}, [_task("running", 0.0)], False),
        ({"dev.docker-runner.followed": "true"}, [_task("complete", 990.0)], False),  # its runner reads it first
        ({"dev.docker-runner.followed": "true"}, [_task("failed", 900.0), _task("complete", 930.0)], True),
        ({"dev.docker-runner.followed": "true"}, [_task("failed", 900.0), _task("running", 0.0)], False),
        ({"dev.docker-runner.followed": "true"}, [], False),
    ],
)
def test_a_job_service_is_tidied_only_long_after_its_task_ended(
    labels: dict[str, str], tasks: list[swarm.TaskView], due: bool
) -> None:
    assert tidy_due(labels, tasks, now=1000.0) is due
