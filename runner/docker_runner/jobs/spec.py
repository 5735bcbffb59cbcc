"""A job request (``POST /v1/jobs``) and the engine create body built from it (pure).

Resources default to the runner's settings (``DOCKER_RUNNER_JOB_MEMORY``, ``_CPUS``, ``_GPUS``) and
a request overrides each one. The job's environment is what the request gives plus the variables
named in ``DOCKER_RUNNER_JOB_ENV_PASSTHROUGH``; never the runner's own secret.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Annotated, Any

import msgspec

from ..containers.spec import STDIN_ATTACHED, ContainerOpts, NonEmptyStr, Resources, build_create_body
from ..errors import validation_error
from ..settings import SECRET_PREFIX, Settings
from ..units import parse_cpus, parse_gpus, parse_memory

JOB_LABEL = "dev.docker-runner.job"
REMOVE_AFTER_SLACK_SECONDS = 600  # a crashed runner's job containers are reaped this long after their timeout

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


def resources_of(request: JobRequest, settings: Settings) -> Resources:
    """The job's resources: the request's, each defaulting to the runner's setting."""
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
        resources=resources_of(request, settings),
    )
    body = build_create_body(opts, settings.instance)
    body.update(STDIN_ATTACHED)
    body["HostConfig"]["MemorySwap"] = body["HostConfig"]["Memory"]
    return body


# A Swarm task's stdin stays open after an attach ends (a service has no StdinOnce), so a placed
# job's command would never see EOF: a shell reads the one input line and pipes it to the command.
LINE_FEEDER = ["/bin/sh", "-c", 'IFS= read -r line; printf "%s\\n" "$line" | "$@"', "docker-runner-job"]


def fed_one_line(body: dict[str, Any], image_config: Mapping[str, Any]) -> dict[str, Any]:
    """``body`` with its command (the image's where the request gives none, as the engine resolves
    it) run behind ``LINE_FEEDER``; the image needs ``/bin/sh``."""
    entrypoint, cmd = body.get("Entrypoint"), body.get("Cmd")
    if entrypoint is None:
        entrypoint = image_config.get("Entrypoint") or []
        if cmd is None:
            cmd = image_config.get("Cmd") or []
    argv = [*entrypoint, *(cmd or [])]
    if not argv:
        raise validation_error("command", "the image names no command to run: give one")
    return {**body, "Entrypoint": list(LINE_FEEDER), "Cmd": argv}
