"""One request description per REST route, and the parser of its answer. Pure: no I/O."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar
from urllib.parse import quote, urlencode

import httpx

from ._models import (
    ContainerOpts,
    ExecOptions,
    ExecResult,
    Job,
    JobResources,
    ManagedContainer,
    PoolStats,
    RunResult,
    StartedContainer,
    TestResult,
    Ticket,
)

T = TypeVar("T")

JSON_CONTENT_TYPE = "application/json"
TAR_CONTENT_TYPE = "application/x-tar"


@dataclass(frozen=True)
class Call:
    """An HTTP request before signing. ``json`` is sent as canonical JSON bytes; ``content`` as is."""

    method: str
    path: str
    query: Mapping[str, str] = field(default_factory=dict)
    json: Any = None
    content: bytes | Path | None = None
    content_type: str | None = None
    exec_bounds_ms: tuple[int, int] | None = None  # (timeoutMs, idleTimeoutMs) of an exec
    may_retry: bool = True
    headers: Mapping[str, str] = field(default_factory=dict)
    endless: bool = False  # a stream kept open by the runner's pings: read timeout spans several


@dataclass(frozen=True)
class Route(Generic[T]):
    call: Call
    parse: Callable[[httpx.Response], T]


def _nothing(_response: httpx.Response) -> None:
    return None


def _json_object(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    if not isinstance(body, dict):
        raise ValueError("expected a JSON object")
    return body


def _field(name: str) -> Callable[[httpx.Response], Any]:
    def parse(response: httpx.Response) -> Any:
        return _json_object(response)[name]

    return parse


def _string_list(name: str) -> Callable[[httpx.Response], list[str]]:
    def parse(response: httpx.Response) -> list[str]:
        return [str(item) for item in _json_object(response)[name]]

    return parse


def health() -> Route[str]:
    return Route(Call("GET", "/v1/health"), _field("status"))


def ready() -> Route[str]:
    return Route(Call("GET", "/v1/ready"), _field("status"))


def ensure_image(image: str, platform: str | None) -> Route[None]:
    body: dict[str, Any] = {"image": image}
    if platform is not None:
        body["platform"] = platform
    return Route(Call("POST", "/v1/images/ensure", json=body), _nothing)


def list_containers(all_containers: bool, labels: Mapping[str, str] | None) -> Route[list[ManagedContainer]]:
    query = {"all": _flag(all_containers), "labels": json.dumps(dict(labels)) if labels else None}

    def parse(response: httpx.Response) -> list[ManagedContainer]:
        return [ManagedContainer.from_json(item) for item in _json_object(response)["containers"]]

    return Route(Call("GET", "/v1/containers", query=_present(query)), parse)


def start_container(opts: ContainerOpts) -> Route[StartedContainer]:
    return Route(
        Call("POST", "/v1/containers/start", json=opts.to_json()),
        lambda response: StartedContainer.from_json(_json_object(response)),
    )


def stop_container(container_id: str, timeout_sec: int | None) -> Route[None]:
    body: dict[str, Any] = {"containerId": container_id}
    if timeout_sec is not None:
        body["timeoutSec"] = timeout_sec
    return Route(Call("POST", "/v1/containers/stop", json=body), _nothing)


def remove_container(container_id: str, force: bool, remove_volumes: bool) -> Route[None]:
    body = {"containerId": container_id, "force": force, "removeVolumes": remove_volumes}
    return Route(Call("POST", "/v1/containers/remove", json=body), _nothing)


def inspect_container(container_id: str) -> Route[dict[str, Any]]:
    return Route(Call("GET", "/v1/containers/inspect", query={"containerId": container_id}), _json_object)


def container_labels(container_id: str) -> Route[dict[str, str]]:
    def parse(response: httpx.Response) -> dict[str, str]:
        return {str(key): str(value) for key, value in _json_object(response)["labels"].items()}

    return Route(Call("GET", "/v1/containers/labels", query={"containerId": container_id}), parse)


def container_networks(container_id: str) -> Route[list[str]]:
    call = Call("GET", "/v1/containers/networks", query={"containerId": container_id})
    return Route(call, _string_list("networks"))


def find_by_labels(labels: Mapping[str, str], all_containers: bool) -> Route[list[str]]:
    body = {"labels": dict(labels), "all": all_containers}
    return Route(Call("POST", "/v1/containers/findByLabels", json=body), _string_list("containerIds"))


def list_by_volume(volume_name: str) -> Route[list[str]]:
    call = Call("GET", "/v1/containers/listByVolume", query={"volumeName": volume_name})
    return Route(call, _string_list("containerIds"))


def touch_container(container_id: str) -> Route[None]:
    return Route(Call("POST", "/v1/containers/touch", json={"containerId": container_id}), _nothing)


def put_archive(container_id: str, path: str, tar_bytes: bytes) -> Route[None]:
    body = {"containerId": container_id, "path": path, "payloadBase64": base64.b64encode(tar_bytes).decode("ascii")}
    return Route(Call("POST", "/v1/containers/putArchive", json=body), _nothing)


def archive_path(container_id: str) -> str:
    return "/v1/containers/" + quote(container_id, safe="") + "/archive"


def upload_archive(container_id: str, path: str, tar: bytes | Path) -> Route[None]:
    """A raw tar upload; a file is streamed from disk, never loaded whole."""
    call = Call("PUT", archive_path(container_id), query={"path": path}, content=tar, content_type=TAR_CONTENT_TYPE)
    return Route(call, _nothing)


def download_archive(container_id: str, path: str) -> Call:
    return Call("GET", archive_path(container_id), query={"path": path})


def remove_volume(volume_name: str, force: bool) -> Route[None]:
    return Route(Call("POST", "/v1/volumes/remove", json={"volumeName": volume_name, "force": force}), _nothing)


def exec_run(container_id: str, command: str | list[str], options: ExecOptions | None) -> Route[ExecResult]:
    options = options or ExecOptions()
    body = {"containerId": container_id, "command": command, "options": options.to_json()}
    call = Call(
        "POST",
        "/v1/exec/run",
        json=body,
        exec_bounds_ms=(options.timeout_ms, options.idle_timeout_ms),
        may_retry=False,  # a retried exec would run the command twice
    )
    return Route(call, lambda response: ExecResult.from_json(_json_object(response)))


def events(since: str | None, until: str | None, filters: Mapping[str, Any] | None, last_event_id: str | None) -> Call:
    query = {"since": since, "until": until}
    if filters is not None:
        query["filters"] = base64.b64encode(json.dumps(dict(filters)).encode()).decode("ascii")
    headers = {"last-event-id": last_event_id} if last_event_id else {}
    return Call("GET", "/v1/events/sse", query=_present(query), headers=headers, endless=True)


def logs(
    container_id: str,
    follow: bool,
    since: str | None,
    tail: int | str | None,
    stdout: bool,
    stderr: bool,
    timestamps: bool,
) -> Call:
    query = {
        "containerId": container_id,
        "follow": _flag(follow),
        "since": since,
        "tail": None if tail is None else str(tail),
        "stdout": _flag(stdout),
        "stderr": _flag(stderr),
        "timestamps": _flag(timestamps),
    }
    return Call("GET", "/v1/containers/logs/sse", query=_present(query), endless=True)


def ticket(path: str, ttl_ms: int | None) -> Route[Ticket]:
    body: dict[str, Any] = {"path": path}
    if ttl_ms is not None:
        body["ttlMs"] = ttl_ms

    def parse(response: httpx.Response) -> Ticket:
        answer = _json_object(response)
        return Ticket(ticket=str(answer["ticket"]), expires_at=int(answer["expiresAt"]), path=path)

    return Route(Call("POST", "/v1/tickets", json=body), parse)


def interactive_exec_target(
    container_id: str,
    command: str | list[str],
    tty: bool,
    demux: bool,
    workdir: str | None,
    env: Mapping[str, str] | None,
) -> str:
    """Path and query of the exec WebSocket, exactly as it is sent and signed."""
    query = {
        "containerId": container_id,
        "command": command if isinstance(command, str) else json.dumps(list(command)),
        "tty": _flag(tty),
        "demux": _flag(demux),
        "workdir": workdir,
        "env": None if env is None else json.dumps(dict(env)),
    }
    return "/v1/exec/interactive/ws?" + urlencode(_present(query), quote_via=quote)


TERMINAL_PAGE = "/ui/terminal"
TERMINAL_SHELL = ["/bin/sh"]


def terminal_target(
    container_id: str, command: str | list[str] | None, workdir: str | None, env: Mapping[str, str] | None
) -> str:
    """The exec WebSocket a browser terminal opens: a tty, ``/bin/sh`` unless a command is given."""
    return interactive_exec_target(container_id, command or TERMINAL_SHELL, True, False, workdir, env)


def terminal_page_url(base_url: str, ticket: Ticket) -> str:
    """The runner's terminal page, with the ticketed WebSocket URL in its fragment (never sent to a server)."""
    return f"{base_url.rstrip('/')}{TERMINAL_PAGE}#{ticket.url(base_url)}"


def _flag(value: bool) -> str:
    return "true" if value else "false"


def _present(values: Mapping[str, str | None]) -> dict[str, str]:
    return {key: value for key, value in values.items() if value is not None}


# Before a run's own timeout starts, the runner may wait for a pooled container (its
# DOCKER_RUNNER_POOL_ACQUIRE_TIMEOUT_MS, 10 s by default), create and start a fresh one (a few
# seconds on a loaded engine), check the patch and put it into the container: 30 s covers those,
# so a run that times out after waiting is answered (200, timedOut) rather than cut off here.
WORKLOAD_OVERHEAD_MS = 30_000


def workload_bound_ms(timeout_ms: int) -> int:
    """The bound a /v1/run or /v1/test answer is waited for: the run's timeout and the overhead
    before it; 0 (no timeout) stays 0, no read timeout."""
    return timeout_ms + WORKLOAD_OVERHEAD_MS if timeout_ms > 0 else 0


def run(
    image: str,
    command: str | list[str],
    stdin: bytes | None,
    files: Mapping[str, bytes] | None,
    workdir: str | None,
    timeout_ms: int | None,
) -> Route[RunResult]:
    body: dict[str, Any] = {"image": image, "command": command}
    if stdin is not None:
        body["stdin"] = base64.b64encode(stdin).decode("ascii")
    if files:
        body["files"] = {path: base64.b64encode(data).decode("ascii") for path, data in files.items()}
    if workdir is not None:
        body["workdir"] = workdir
    if timeout_ms is not None:
        body["timeoutMs"] = timeout_ms
    call = Call("POST", "/v1/run", json=body, exec_bounds_ms=(workload_bound_ms(timeout_ms or 0), 0), may_retry=False)
    return Route(call, lambda response: RunResult.from_json(_json_object(response)))


def run_tests(
    image: str,
    tar: bytes | Path,
    removed: list[str],
    test_cmd: str | None,
    timeout_ms: int | None,
    workdir: str | None,
) -> Route[TestResult]:
    query = {
        "image": image,
        "testCmd": test_cmd,
        "timeoutMs": None if timeout_ms is None else str(timeout_ms),
        "workdir": workdir,
        "removePaths": json.dumps(removed) if removed else None,
    }
    bound = 300_000 if timeout_ms is None else timeout_ms
    call = Call(
        "PUT",
        "/v1/test",
        query=_present(query),
        content=tar,
        content_type=TAR_CONTENT_TYPE,
        exec_bounds_ms=(workload_bound_ms(bound), 0),
        may_retry=False,
    )
    return Route(call, lambda response: TestResult.from_json(_json_object(response)))


def pools() -> Route[list[PoolStats]]:
    def parse(response: httpx.Response) -> list[PoolStats]:
        return [PoolStats.from_json(item) for item in _json_object(response)["pools"]]

    return Route(Call("GET", "/v1/pools"), parse)


def resize_exec(exec_id: str, cols: int, rows: int) -> Route[None]:
    body = {"execId": exec_id, "size": {"cols": cols, "rows": rows}}
    return Route(Call("POST", "/v1/exec/resize", json=body), _nothing)


def submit_job(
    image: str,
    job_input: Any,
    command: str | list[str] | None,
    env: Mapping[str, str] | None,
    resources: JobResources | None,
    timeout_ms: int | None,
    labels: Mapping[str, str] | None,
) -> Route[Job]:
    body: dict[str, Any] = {"image": image, "input": job_input}
    optional = {
        "command": command,
        "env": None if env is None else dict(env),
        "resources": None if resources is None else resources.to_json(),
        "timeoutMs": timeout_ms,
        "labels": None if labels is None else dict(labels),
    }
    body.update({key: value for key, value in optional.items() if value is not None})
    # a retried submit could start the job twice
    call = Call("POST", "/v1/jobs", json=body, may_retry=False)
    return Route(call, lambda response: Job.from_json(_json_object(response)))


def _job_path(job_id: str) -> str:
    return "/v1/jobs/" + quote(job_id, safe="")


def job(job_id: str) -> Route[Job]:
    return Route(Call("GET", _job_path(job_id)), lambda response: Job.from_json(_json_object(response)))


def jobs() -> Route[list[Job]]:
    return Route(
        Call("GET", "/v1/jobs"), lambda response: [Job.from_json(item) for item in _json_object(response)["jobs"]]
    )


def cancel_job(job_id: str) -> Route[Job]:
    return Route(Call("DELETE", _job_path(job_id)), lambda response: Job.from_json(_json_object(response)))


def job_events(job_id: str, last_event_id: str | None) -> Call:
    headers = {"last-event-id": last_event_id} if last_event_id else {}
    return Call("GET", _job_path(job_id) + "/events", headers=headers, endless=True)
