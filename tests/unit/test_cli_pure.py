"""The command line's pure parts: argument parsing, option values, tables, JSON, exit codes, tar extraction."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from docker_runner_client import (
    Conflict,
    DockerRunnerError,
    DockerRunnerRequestError,
    ExecTimeout,
    Forbidden,
    Job,
    JobError,
    ManagedContainer,
    NotFound,
    RunnerTimeout,
    RunnerTransportError,
    StreamError,
    Unauthorized,
    UpstreamError,
    ValidationFailed,
)
from docker_runner_client._cli import args as values
from docker_runner_client._cli import build_parser, exits
from docker_runner_client._cli.containers import ps_rows, start_opts
from docker_runner_client._cli.copy import extract, renamed
from docker_runner_client._cli.jobs import event_json, job_exit_code
from docker_runner_client._cli.output import ago, camel, duration, table, to_json
from docker_runner_client._models import JobLog


def _error(cls: type[DockerRunnerError], code: str = "x") -> DockerRunnerError:
    if issubclass(cls, RunnerTransportError):
        return cls("no answer", code=code, retryable=False)
    if cls is StreamError:
        return StreamError("broke")
    return cls("refused", status_code=400, code=code)


@pytest.mark.parametrize(
    ("cls", "expected"),
    [
        (ValidationFailed, 100),
        (Unauthorized, 101),
        (Forbidden, 102),
        (NotFound, 103),
        (Conflict, 104),
        (UpstreamError, 105),
        (RunnerTransportError, 106),
        (RunnerTimeout, 124),
        (ExecTimeout, 124),
        (StreamError, 1),
        (DockerRunnerRequestError, 1),
    ],
)
def test_each_exception_class_has_its_exit_code(cls: type[DockerRunnerError], expected: int) -> None:
    """One table: the most specific class wins (RunnerTimeout is a transport error, but a timeout)."""
    assert exits.exit_code_for(_error(cls)) == expected


def test_the_exit_codes_are_distinct_and_in_the_help() -> None:
    """No two meanings share a code; --help lists every code; the error line is one line."""
    codes = [exit.code for exit in exits.EXIT_CODES]
    assert len(codes) == len(set(codes))
    shown = exits.exit_codes_help()
    assert all(f"{exit.code:>3}  {exit.name}" in shown for exit in exits.EXIT_CODES)
    assert exits.error_line("no_such_container", "No such\ncontainer:  x") == (
        "docker-runner-client: no_such_container: No such container: x"
    )


def test_start_takes_everything_after_the_image_as_its_command() -> None:
    """start IMAGE CMD...: options after the image belong to the command, as for docker run."""
    parsed = build_parser().parse_args(["start", "--ttl", "60", "--label", "a=b", "img", "sleep", "--ttl", "9"])
    opts = start_opts(parsed)
    assert (opts.image, list(opts.cmd or []), opts.ttl_seconds, opts.labels) == (
        "img",
        ["sleep", "--ttl", "9"],
        60,
        {"a": "b"},
    )
    bare = start_opts(build_parser().parse_args(["start", "--keep", "img"]))
    assert (bare.cmd, bare.auto_remove, bare.labels, bare.env, bare.fast_exec) == (None, False, None, None, None)
    fast = start_opts(build_parser().parse_args(["start", "--fast-exec", "img"]))
    slow = start_opts(build_parser().parse_args(["start", "--no-fast-exec", "img"]))
    assert (fast.fast_exec, slow.fast_exec, fast.to_json()["fastExec"]) == (True, False, True)


def test_common_options_before_or_after_the_command() -> None:
    """--json and --url work before the command name and after it; after it never erases before it."""
    before = build_parser().parse_args(["--json", "--url", "http://a", "ps"])
    after = build_parser().parse_args(["ps", "--json", "--url", "http://b"])
    neither = build_parser().parse_args(["ps"])
    assert (before.json, before.url, after.json, after.url) == (True, "http://a", True, "http://b")
    assert (neither.json, neither.url) == (False, None)


def test_exec_timeout_is_in_seconds() -> None:
    """--timeout 1.5 is 1500 ms; a negative or non-number timeout is a usage error (exit 2)."""
    parsed = build_parser().parse_args(["exec", "--timeout", "1.5", "box", "sh", "-c", "true"])
    assert (values.milliseconds(parsed.timeout), parsed.command) == (1500, ["sh", "-c", "true"])
    for bad in ("-1", "soon", "inf"):
        with pytest.raises(SystemExit) as caught:
            build_parser().parse_args(["exec", "--timeout", bad, "box", "true"])
        assert caught.value.code == 2


def test_option_values() -> None:
    """KEY=VALUE pairs, filters (container events unless a type is given), times, remote paths, commands."""
    assert values.key_values(["a=1", "b=x=y", "c="], "--env") == {"a": "1", "b": "x=y", "c": ""}
    for bad in (["novalue"], ["=v"]):
        with pytest.raises(exits.CliError):
            values.key_values(bad, "--env")
    assert values.filters(["label=a=b", "label=c", "event=die"]) == {
        "label": ["a=b", "c"],
        "event": ["die"],
        "type": ["container"],
    }
    assert values.filters(["type=image"]) == {"type": ["image"]}
    assert values.timestamp("1767225600.5", 0) == "1767225600.5"
    assert [values.timestamp(rel, 10_000) for rel in ("30s", "10m", "1h", "1.5d")] == [
        "9970",
        "9400",
        "6400",
        "-119600",
    ]
    assert values.timestamp(None, 0) is None
    with pytest.raises(exits.CliError):
        values.timestamp("yesterday", 0)
    assert values.remote("box:/etc") == ("box", "/etc")
    assert values.remote("box:") == ("box", "/")
    assert [values.remote(local) for local in ("-", "./a:b", "/tmp/a:b", "plain", ":x")] == [None] * 5
    assert values.command(["--", "ls", "-l"], "exec") == ["ls", "-l"]
    with pytest.raises(exits.CliError):
        values.command([], "exec")


def test_json_input_from_text_or_file(tmp_path: Path) -> None:
    """--input is JSON text or @FILE; anything else is a usage error."""
    (tmp_path / "in.json").write_text('{"a": [1]}')
    assert values.json_value('{"b": 2}') == {"b": 2}
    assert values.json_value(f"@{tmp_path / 'in.json'}") == {"a": [1]}
    for bad in ("{nope", f"@{tmp_path / 'missing'}"):
        with pytest.raises(exits.CliError):
            values.json_value(bad)


def test_tables_align_and_durations_read_well() -> None:
    """Columns are as wide as their widest cell, two spaces apart, the last one unpadded."""
    assert table(["A", "LONGER"], [["xyz", "1"], ["q", ""]]) == "A    LONGER\nxyz  1\nq"
    assert [duration(value) for value in (None, 0, 45.9, 598, 7500, 300_000)] == [
        "-",
        "0s",
        "45s",
        "9m58s",
        "2h05m",
        "3d11h",
    ]
    assert (ago(None, 0), ago(10_000, 70)) == ("-", "1m00s ago")


def test_ps_rows_show_the_ttl_left() -> None:
    """- without a TTL, unknown for another instance's container, else the time left."""

    def listed(ttl: int | None, left: int | None) -> ManagedContainer:
        return ManagedContainer("a" * 64, "box", "img", "running", 1_000_000, {}, ttl, left)

    rows = ps_rows([listed(None, None), listed(600, None), listed(600, 598)], now=1060)
    assert [row[-1] for row in rows] == ["-", "unknown", "9m58s"]
    assert rows[0][:5] == ["a" * 12, "box", "img", "running", "1m00s ago"]
    assert ps_rows([listed(None, None)], now=1060, full_ids=True)[0][0] == "a" * 64


def _job(status: str, exit_code: int | None = None, error: str | None = None) -> Job:
    return Job(
        "j", status, "img", "c", {}, 0, exit_code, JobError(error, "") if error else None, 0, None, None, 0, 0, 0, 0
    )


def test_job_exit_codes_and_json() -> None:
    """completed 0, failed with its code, timed out 124, cancelled or unstarted 1; events keep their type."""
    assert job_exit_code(_job("completed", 0)) == 0
    assert job_exit_code(_job("error", 4, "job_failed")) == 4
    assert job_exit_code(_job("error", 137, "job_timeout")) == 124
    assert job_exit_code(_job("cancelled", 137)) == 1
    assert job_exit_code(_job("error", None, "no_such_image")) == 1
    assert event_json(JobLog("stderr", "warn", 7)) == {"type": "log", "id": 7, "stream": "stderr", "line": "warn"}
    assert to_json(_job("completed", 0))["jobId"] == "j" and camel("acquire_wait_ms_avg") == "acquireWaitMsAvg"
    assert json.dumps(to_json({"b": b"\xff"})) == '{"b": "\\ufffd"}'


def _tar(*members: tuple[tarfile.TarInfo, bytes]) -> io.BytesIO:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for info, content in members:
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content) if content else None)
    buffer.seek(0)
    return buffer


def _file(name: str, content: bytes = b"x") -> tuple[tarfile.TarInfo, bytes]:
    return tarfile.TarInfo(name), content


def _link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info, b""


def test_extract_into_a_directory_or_as_a_new_name(tmp_path: Path) -> None:
    """Into an existing directory the tar's top entry keeps its name; else it takes the new one
    (hard links renamed along); an absolute symlink is kept as it is, as docker cp keeps it."""
    archive = [
        _file("etc/hostname", b"box\n"),
        _link("etc/mtab", "/proc/mounts"),
        _link("etc/copy", "etc/hostname", tarfile.LNKTYPE),
    ]
    (tmp_path / "into").mkdir()
    extract(_tar(*archive), tmp_path / "into")
    assert (tmp_path / "into" / "etc" / "hostname").read_bytes() == b"box\n"
    extract(_tar(*archive), tmp_path / "new")
    assert (tmp_path / "new" / "copy").read_bytes() == b"box\n"
    assert (tmp_path / "new" / "mtab").readlink() == Path("/proc/mounts")
    assert renamed("etc/a/b", "new") == "new/a/b" and renamed("hostname", "n") == "n"


@pytest.mark.parametrize(
    "hostile",
    [
        [_file("../escaped")],
        [_link("top/out", "/"), _file("top/out/escaped")],
        [_link("top/hard", "/etc/passwd", tarfile.LNKTYPE)],
    ],
)
def test_extract_refuses_what_leaves_the_destination(
    tmp_path: Path, hostile: list[tuple[tarfile.TarInfo, bytes]]
) -> None:
    """Nothing lands outside the destination: no escape by .., through a link, or by a hard link out."""
    (tmp_path / "into").mkdir()
    with pytest.raises(exits.CliError):
        extract(_tar(*hostile), tmp_path / "into")
    assert not (tmp_path / "escaped").exists()


def test_extract_roots_absolute_names_in_the_destination(tmp_path: Path) -> None:
    """An absolute entry name loses its leading slash: it lands inside the destination."""
    (tmp_path / "into").mkdir()
    extract(_tar(_file("/abs/inside")), tmp_path / "into")
    assert (tmp_path / "into" / "abs" / "inside").read_bytes() == b"x"
