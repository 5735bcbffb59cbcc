"""Typed arguments and results of the runner's REST routes (docs/protocol.md section 3)."""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _drop_none(values: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}


def _env_json(env: Mapping[str, str] | Sequence[str] | None) -> dict[str, str] | list[str] | None:
    """An environment as the API takes it: an object, or a list of ``K=V`` strings."""
    if env is None or isinstance(env, Mapping):
        return None if env is None else dict(env)
    return list(env)


@dataclass(frozen=True)
class Resources:
    """Resource limits of a container; ``gpus`` is ``"all"`` or a list of device ids."""

    memory_bytes: int | None = None
    nano_cpus: int | None = None
    pids_limit: int | None = None
    gpus: Literal["all"] | Sequence[str] | None = None

    def to_json(self) -> dict[str, Any]:
        gpus = self.gpus if self.gpus is None or isinstance(self.gpus, str) else list(self.gpus)
        return _drop_none(
            {
                "memoryBytes": self.memory_bytes,
                "nanoCpus": self.nano_cpus,
                "pidsLimit": self.pids_limit,
                "gpus": gpus,
            }
        )


@dataclass(frozen=True)
class ContainerOpts:
    """How to create and start a container (docs/protocol.md 3.1)."""

    image: str
    name: str | None = None
    cmd: Sequence[str] | None = None
    entrypoint: str | Sequence[str] | None = None
    env: Mapping[str, str] | Sequence[str] | None = None
    working_dir: str | None = None
    auto_remove: bool | None = None
    binds: Sequence[str] | None = None
    network_mode: str | None = None
    tty: bool | None = None
    labels: Mapping[str, str] | None = None
    platform: str | None = None
    privileged: bool | None = None
    anonymous_volumes: Sequence[str] | None = None
    create_extras: Mapping[str, Any] | None = None
    ttl_seconds: int | None = None
    resources: Resources | None = None
    fast_exec: bool | None = None  # exec runs through a resident command channel (None: the runner's setting)

    def to_json(self) -> dict[str, Any]:
        def listed(value: Sequence[str] | None) -> list[str] | None:
            return None if value is None else list(value)

        entrypoint = (
            self.entrypoint if self.entrypoint is None or isinstance(self.entrypoint, str) else list(self.entrypoint)
        )
        return _drop_none(
            {
                "image": self.image,
                "name": self.name,
                "cmd": listed(self.cmd),
                "entrypoint": entrypoint,
                "env": _env_json(self.env),
                "workingDir": self.working_dir,
                "autoRemove": self.auto_remove,
                "binds": listed(self.binds),
                "networkMode": self.network_mode,
                "tty": self.tty,
                "labels": None if self.labels is None else dict(self.labels),
                "platform": self.platform,
                "privileged": self.privileged,
                "anonymousVolumes": listed(self.anonymous_volumes),
                "createExtras": None if self.create_extras is None else dict(self.create_extras),
                "ttlSeconds": self.ttl_seconds,
                "resources": None if self.resources is None else self.resources.to_json(),
                "fastExec": self.fast_exec,
            }
        )


@dataclass(frozen=True)
class ExecOptions:
    """Options of ``POST /v1/exec/run`` (docs/protocol.md 3.2); 0 for a timeout means no bound."""

    workdir: str | None = None
    env: Mapping[str, str] | Sequence[str] | None = None  # {"K": "V"} or ["K=V", ...]
    tty: bool | None = None
    timeout_ms: int = 0
    idle_timeout_ms: int = 0
    kill_on_timeout: bool | None = None
    user: str | None = None
    stdin: bytes | None = None
    max_output_bytes: int | None = None
    log_to_pid1: bool | None = None  # also copy the output to the container's own (docker logs)

    def to_json(self) -> dict[str, Any]:
        return _drop_none(
            {
                "workdir": self.workdir,
                "env": _env_json(self.env),
                "tty": self.tty,
                "timeoutMs": self.timeout_ms,
                "idleTimeoutMs": self.idle_timeout_ms,
                "killOnTimeout": self.kill_on_timeout,
                "user": self.user,
                "stdin": None if self.stdin is None else base64.b64encode(self.stdin).decode("ascii"),
                "maxOutputBytes": self.max_output_bytes,
                "logToPid1": self.log_to_pid1,
            }
        )


@dataclass(frozen=True)
class DockerEvent:
    """One engine event (``type`` container, image, ...; ``action`` start, die, destroy, ...)."""

    type: str
    action: str
    actor_id: str
    attributes: Mapping[str, str]
    time_nano: int
    raw: Mapping[str, Any]
    event_id: str | None = None  # the stream's id after this event: Last-Event-ID resumes exactly there

    @classmethod
    def from_json(cls, event: Mapping[str, Any], event_id: str | None = None) -> DockerEvent:
        actor = event.get("Actor") or {}
        return cls(
            type=str(event.get("Type") or event.get("type") or ""),
            action=str(event.get("Action") or event.get("status") or ""),
            actor_id=str(actor.get("ID") or event.get("id") or ""),
            attributes={str(k): str(v) for k, v in (actor.get("Attributes") or {}).items()},
            time_nano=int(event.get("timeNano") or 0),
            raw=dict(event),
            event_id=event_id,
        )


@dataclass(frozen=True)
class LogChunk:
    stream: Literal["stdout", "stderr"]
    data: bytes


@dataclass(frozen=True)
class ExecOutput:
    """Output of an interactive exec; ``stream`` is stderr only without a tty and with demux."""

    stream: Literal["stdout", "stderr"]
    data: bytes


@dataclass(frozen=True)
class Ticket:
    """A single-use browser ticket for one path and query (docs/protocol.md 1.1)."""

    ticket: str
    expires_at: int
    path: str

    def url(self, base_url: str) -> str:
        """The full URL to hand a browser: ``ws(s)://`` for the exec WebSocket, ``http(s)://`` otherwise."""
        base = base_url.rstrip("/")
        if self.path.split("?", 1)[0].endswith("/ws"):
            base = "ws" + base[4:] if base.startswith("http") else base
        separator = "&" if "?" in self.path else "?"
        return f"{base}{self.path}{separator}ticket={quote(self.ticket, safe='')}"


@dataclass(frozen=True)
class RunResult:
    """A one-shot run: ``exit_code`` is None when it timed out."""

    exit_code: int | None
    stdout: str
    stderr: str
    elapsed_ms: int
    timed_out: bool
    truncated: bool
    pooled: bool
    node: str | None = None  # cluster mode: the Swarm node it ran on

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> RunResult:
        code = body.get("exitCode")
        return cls(
            exit_code=None if code is None else int(code),
            stdout=str(body.get("stdout", "")),
            stderr=str(body.get("stderr", "")),
            elapsed_ms=int(body.get("elapsedMs", 0)),
            timed_out=bool(body.get("timedOut", False)),
            truncated=bool(body.get("truncated", False)),
            pooled=bool(body.get("pooled", False)),
            node=None if body.get("node") is None else str(body["node"]),
        )


@dataclass(frozen=True)
class PoolStats:
    """One pool of pre-warmed containers, as ``GET /v1/pools`` reports it."""

    image: str
    min: int
    max: int
    size: int
    idle: int
    in_use: int
    creating: int
    created: int
    destroyed: int
    health_failures: int
    acquisitions: int
    acquire_wait_ms_avg: float

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> PoolStats:
        return cls(
            image=str(body["image"]),
            min=int(body.get("min", 0)),
            max=int(body.get("max", 0)),
            size=int(body.get("size", 0)),
            idle=int(body.get("idle", 0)),
            in_use=int(body.get("inUse", 0)),
            creating=int(body.get("creating", 0)),
            created=int(body.get("created", 0)),
            destroyed=int(body.get("destroyed", 0)),
            health_failures=int(body.get("healthFailures", 0)),
            acquisitions=int(body.get("acquisitions", 0)),
            acquire_wait_ms_avg=float(body.get("acquireWaitMsAvg", 0.0)),
        )


@dataclass(frozen=True)
class TestResult:
    """A test run: ``exit_code`` is None when the tests ran past their timeout."""

    __test__ = False  # not a pytest test class

    exit_code: int | None
    test_output: str
    elapsed_ms: int
    timed_out: bool
    truncated: bool
    pooled: bool
    node: str | None = None  # cluster mode: the Swarm node it ran on

    @property
    def passed(self) -> bool:
        return self.exit_code == 0

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> TestResult:
        code = body.get("exitCode")
        return cls(
            exit_code=None if code is None else int(code),
            test_output=str(body.get("testOutput", "")),
            elapsed_ms=int(body.get("elapsedMs", 0)),
            timed_out=bool(body.get("timedOut", False)),
            truncated=bool(body.get("truncated", False)),
            pooled=bool(body.get("pooled", False)),
            node=None if body.get("node") is None else str(body["node"]),
        )


@dataclass(frozen=True)
class StartedContainer:
    container_id: str
    name: str
    status: str

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> StartedContainer:
        return cls(
            container_id=str(body["containerId"]), name=str(body.get("name", "")), status=str(body.get("status", ""))
        )


@dataclass(frozen=True)
class ManagedContainer:
    """A container in the runner's scope, as ``GET /v1/containers`` lists it. ``status`` is the
    engine's state (running, exited, ...); ``created_at`` epoch ms. ``ttl_left_seconds`` is None
    without a TTL, or when another runner instance reaps the container."""

    container_id: str
    name: str
    image: str
    status: str
    created_at: int
    labels: Mapping[str, str]
    ttl_seconds: int | None
    ttl_left_seconds: int | None

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> ManagedContainer:
        return cls(
            container_id=str(body["containerId"]),
            name=str(body.get("name", "")),
            image=str(body.get("image", "")),
            status=str(body.get("status", "")),
            created_at=int(body.get("createdAt", 0)),
            labels={str(key): str(value) for key, value in (body.get("labels") or {}).items()},
            ttl_seconds=_optional_int(body.get("ttlSeconds")),
            ttl_left_seconds=_optional_int(body.get("ttlLeftSeconds")),
        )


@dataclass(frozen=True)
class ExecResult:
    stdout: str
    stderr: str
    exit_code: int
    duration_ms: int | None = None
    truncated: bool = False
    extra: Mapping[str, Any] = field(default_factory=dict)
    path: str | None = None  # "channel" or "exec": how the runner ran it (None: a runner that does not say)

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> ExecResult:
        known = {"stdout", "stderr", "exitCode", "durationMs", "truncated", "path"}
        duration = body.get("durationMs")
        return cls(
            stdout=str(body.get("stdout", "")),
            stderr=str(body.get("stderr", "")),
            exit_code=int(body["exitCode"]),
            duration_ms=None if duration is None else int(duration),
            truncated=bool(body.get("truncated", False)),
            extra={key: value for key, value in body.items() if key not in known},
            path=None if body.get("path") is None else str(body["path"]),
        )


@dataclass(frozen=True)
class JobResources:
    """A job's limits; each one left None takes the runner's default (``DOCKER_RUNNER_JOB_*``).
    ``memory`` is bytes or a size such as ``"512m"``; ``gpus`` is ``"all"``, ``"none"`` or device ids."""

    memory: int | str | None = None
    cpus: float | None = None
    gpus: str | Sequence[str] | None = None

    def to_json(self) -> dict[str, Any]:
        gpus = self.gpus if self.gpus is None or isinstance(self.gpus, str) else list(self.gpus)
        return _drop_none({"memory": self.memory, "cpus": self.cpus, "gpus": gpus})


@dataclass(frozen=True)
class JobError:
    """Why a job ended in ``error``: ``job_timeout``, ``job_oom``, ``job_failed`` (non-zero exit), ..."""

    code: str
    message: str


JOB_ENDED = ("completed", "error", "cancelled")


@dataclass(frozen=True)
class Job:
    """A job: ``status`` is starting, running, completed, error or cancelled; times in epoch ms."""

    job_id: str
    status: str
    image: str
    container_id: str
    labels: Mapping[str, str]
    timeout_ms: int
    exit_code: int | None
    error: JobError | None
    created_at: int
    started_at: int | None
    ended_at: int | None
    messages: int
    logs: int
    events_dropped: int
    lines_dropped: int
    node: str | None = None  # cluster mode: the Swarm node it runs on

    @property
    def ended(self) -> bool:
        return self.status in JOB_ENDED

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> Job:
        error = body.get("error")
        return cls(
            job_id=str(body["jobId"]),
            status=str(body["status"]),
            image=str(body.get("image", "")),
            container_id=str(body.get("containerId", "")),
            labels={str(key): str(value) for key, value in (body.get("labels") or {}).items()},
            timeout_ms=int(body.get("timeoutMs", 0)),
            exit_code=_optional_int(body.get("exitCode")),
            error=None if not error else JobError(str(error.get("code", "")), str(error.get("message", ""))),
            created_at=int(body.get("createdAt", 0)),
            started_at=_optional_int(body.get("startedAt")),
            ended_at=_optional_int(body.get("endedAt")),
            messages=int(body.get("messages", 0)),
            logs=int(body.get("logs", 0)),
            events_dropped=int(body.get("eventsDropped", 0)),
            lines_dropped=int(body.get("linesDropped", 0)),
            node=None if body.get("node") is None else str(body["node"]),
        )


@dataclass(frozen=True)
class JobMessage:
    """A stdout line of the job that was a JSON object; ``id`` resumes the stream after it."""

    message: Mapping[str, Any]
    id: int | None = None


@dataclass(frozen=True)
class JobLog:
    """Any other output line of the job."""

    stream: Literal["stdout", "stderr"]
    line: str
    id: int | None = None


@dataclass(frozen=True)
class JobUpdate:
    """The job's status changed; the last one of a stream has an ended status."""

    job: Job
    id: int | None = None

    @property
    def status(self) -> str:
        return self.job.status

    @property
    def exit_code(self) -> int | None:
        return self.job.exit_code

    @property
    def error(self) -> JobError | None:
        return self.job.error


@dataclass(frozen=True)
class JobEventsDropped:
    """``dropped`` events happened but were no longer buffered when this subscriber read them."""

    dropped: int


JobEvent = JobMessage | JobLog | JobUpdate | JobEventsDropped
