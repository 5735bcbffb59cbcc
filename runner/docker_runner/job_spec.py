"""A job request (``POST /v1/jobs``) and the engine create body built from it (pure).

Resources default to the runner's settings (``DOCKER_RUNNER_JOB_MEMORY``, ``_CPUS``, ``_GPUS``) and
a request overrides each one. The job's environment is what the request gives plus the variables
named in ``DOCKER_RUNNER_JOB_ENV_PASSTHROUGH``; never the runner's own secret.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Annotated, Any, Literal

import msgspec

from .container_spec import ContainerOpts, NonEmptyStr, Resources, build_create_body
from .errors import validation_error

if TYPE_CHECKING:
    from .settings import Settings

JOB_LABEL = "dev.docker-runner.job"
SECRET_PREFIX = "DOCKER_RUNNER_SHARED_SECRET"
MIN_MEMORY_BYTES = 6 * 1024 * 1024  # the engine refuses less
MIN_CPUS = 0.01
REMOVE_AFTER_SLACK_SECONDS = 600  # a crashed runner's job containers are reaped this long after their timeout

Gpus = Literal["all"] | tuple[str, ...] | None

_MEMORY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([bkmgt]?)(?:i?b)?\s*$", re.I)
_MEMORY_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
_ENV_NAME = re.compile(r"^[^=\x00]+$")


class JobResources(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    memory: str | int | None = None  # bytes, or "512m", "2g", ...
    cpus: float | None = None
    gpus: str | list[str] | None = None  # "all", "none", "0,1" or ["0", "1"]


class JobRequest(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    image: NonEmptyStr
    input: Any  # any JSON: written to the job's stdin as one line, then EOF
    command: NonEmptyStr | Annotated[list[str], msgspec.Meta(min_length=1)] | None = None
    env: dict[str, str] | None = None
    resources: JobResources | None = None
    timeout_ms: Annotated[int, msgspec.Meta(ge=0)] | None = None  # 0: no bound
    labels: dict[str, str] | None = None


def parse_memory(value: str | int) -> int:
    """Bytes from an integer or a size such as ``512m`` or ``2g`` (ValueError when it is neither)."""
    if isinstance(value, bool):
        raise ValueError("must be a number of bytes or a size such as 512m")
    if isinstance(value, int):
        number = value
    else:
        match = _MEMORY.match(value)
        if match is None:
            raise ValueError(f"must be a number of bytes or a size such as 512m, got {value!r}")
        number = int(float(match.group(1)) * _MEMORY_UNITS[match.group(2).lower()])
    if number < MIN_MEMORY_BYTES:
        raise ValueError(f"must be at least {MIN_MEMORY_BYTES} bytes (6m), got {value!r}")
    return number


def parse_cpus(value: float | str) -> int:
    """Nano CPUs from a number of CPUs such as ``2`` or ``0.5``."""
    try:
        cpus = float(value)
    except ValueError:
        raise ValueError(f"must be a number of CPUs such as 1.5, got {value!r}") from None
    if not math.isfinite(cpus) or cpus < MIN_CPUS:
        raise ValueError(f"must be a number of CPUs of at least {MIN_CPUS}, got {value!r}")
    return round(cpus * 1_000_000_000)


def parse_gpus(value: str | Iterable[str] | None) -> Gpus:
    """``all``, device ids (a list or comma-separated), or none (``none``, empty, None)."""
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        if text.lower() == "all":
            return "all"
        if text.lower() in ("", "none"):
            return None
        items = text.split(",")
    else:
        items = list(value)
    ids = tuple(item.strip() for item in items)
    if not ids:
        return None
    if any(not item or item.lower() in ("all", "none") for item in ids):
        raise ValueError('must be "all", "none" or device ids such as "0,1"')
    return ids


def passthrough(
    names: Iterable[str], environ: Mapping[str, str], secrets: Iterable[str]
) -> tuple[tuple[str, str], ...]:
    """The named variables that are set, with their values; ValueError for the runner's secret."""
    secret_values = {secret for secret in secrets if secret}
    pairs = []
    for name in names:
        if name.upper().startswith(SECRET_PREFIX):
            raise ValueError(f"must not name the runner's secret ({name})")
        if name not in environ:
            continue
        if environ[name] in secret_values:
            raise ValueError(f"{name} holds the runner's secret")
        pairs.append((name, environ[name]))
    return tuple(pairs)


def job_env(request_env: Mapping[str, str] | None, settings: Settings) -> list[str]:
    """Passthrough variables first, the request's own over them; the runner's secret never."""
    for name in request_env or {}:
        if not _ENV_NAME.match(name):
            raise validation_error(f"env.{name}", "a variable name must be non-empty, without '=' or NUL")
    secrets = set(settings.secrets)
    env = {
        name: value
        for name, value in settings.job_env_passthrough
        if not name.upper().startswith(SECRET_PREFIX) and value not in secrets
    }
    env.update(request_env or {})
    return [f"{name}={value}" for name, value in env.items()]


def _resources(request: JobRequest, settings: Settings) -> Resources:
    asked = request.resources or JobResources()
    memory, nano_cpus, gpus = settings.job_memory_bytes, settings.job_nano_cpus, settings.job_gpus
    try:
        if asked.memory is not None:
            memory = parse_memory(asked.memory)
    except ValueError as exc:
        raise validation_error("resources.memory", str(exc)) from None
    try:
        if asked.cpus is not None:
            nano_cpus = parse_cpus(asked.cpus)
    except ValueError as exc:
        raise validation_error("resources.cpus", str(exc)) from None
    try:
        if asked.gpus is not None:
            gpus = parse_gpus(asked.gpus)
    except ValueError as exc:
        raise validation_error("resources.gpus", str(exc)) from None
    return Resources(memory_bytes=memory, nano_cpus=nano_cpus, gpus=list(gpus) if isinstance(gpus, tuple) else gpus)


def _command(command: str | list[str] | None) -> list[str] | None:
    """A string runs under a login shell (as exec runs do); a list runs as given."""
    if command is None:
        return None
    return ["/bin/sh", "-lc", command] if isinstance(command, str) else list(command)


def timeout_ms(request: JobRequest, settings: Settings) -> int:
    return settings.job_timeout_ms if request.timeout_ms is None else request.timeout_ms


def input_line(value: Any) -> bytes:
    """The input as one line of compact JSON (JSON escapes every newline inside it)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8") + b"\n"


def build_job_body(request: JobRequest, job_id: str, settings: Settings) -> dict[str, Any]:
    """The engine create body of a job: stdin open and attached once, no auto-remove (the runner
    reads the exit code and OOM flag first), memory without extra swap. The caller checks it
    against the policy."""
    bound_ms = timeout_ms(request, settings)
    opts = ContainerOpts(
        image=request.image,
        cmd=_command(request.command),
        env=job_env(request.env, settings),
        labels={**(request.labels or {}), JOB_LABEL: job_id},
        auto_remove=False,
        ttl_seconds=bound_ms // 1000 + REMOVE_AFTER_SLACK_SECONDS if bound_ms > 0 else None,
        resources=_resources(request, settings),
    )
    body = build_create_body(opts, settings.instance)
    body.update(
        {
            "OpenStdin": True,
            "StdinOnce": True,
            "AttachStdin": True,
            "AttachStdout": True,
            "AttachStderr": True,
            "Tty": False,
        }
    )
    body["HostConfig"]["MemorySwap"] = body["HostConfig"]["Memory"]
    return body
