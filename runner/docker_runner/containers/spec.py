"""ContainerOpts (docs/protocol.md 3.1) and the engine create body built from them (pure)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from .create_body import normalize_create_body

MANAGED_LABEL = "dev.docker-runner.managed"
TTL_LABEL = "dev.docker-runner.ttl-seconds"
# a main process fed through the container's attach stream (bootstrap and job containers): stdin
# open and attached once, so that its end is the process's EOF; no tty, so the output stays framed
STDIN_ATTACHED: dict[str, bool] = {
    "OpenStdin": True,
    "StdinOnce": True,
    "AttachStdin": True,
    "AttachStdout": True,
    "AttachStderr": True,
    "Tty": False,
}
INSTANCE_LABEL = "dev.docker-runner.instance"
ONESHOT_LABEL = "dev.docker-runner.oneshot"  # a fresh container of one /v1/run or /v1/test
# ContainerOpts.fastExec: "true" or "false"; absent, DOCKER_RUNNER_FAST_EXEC decides
FAST_EXEC_LABEL = "dev.docker-runner.fast-exec"

PositiveInt = Annotated[int, msgspec.Meta(ge=1)]
NonEmptyStr = Annotated[str, msgspec.Meta(min_length=1)]


class Resources(msgspec.Struct, rename="camel", forbid_unknown_fields=True, omit_defaults=True):
    memory_bytes: PositiveInt | None = None
    nano_cpus: PositiveInt | None = None
    pids_limit: Annotated[int, msgspec.Meta(ge=-1)] | None = None
    gpus: Literal["all"] | list[NonEmptyStr] | None = None


class Placement(msgspec.Struct, rename="camel", forbid_unknown_fields=True, omit_defaults=True):
    """Where Swarm may put the container (cluster mode): its constraints and preferences, as Swarm takes them."""

    constraints: list[NonEmptyStr] | None = None
    preferences: list[NonEmptyStr | dict[str, Any]] | None = None


class ContainerOpts(msgspec.Struct, rename="camel", forbid_unknown_fields=True, omit_defaults=True):
    image: NonEmptyStr
    name: NonEmptyStr | None = None
    cmd: list[str] | None = None
    entrypoint: str | list[str] | None = None
    env: dict[str, str] | list[str] | None = None
    working_dir: str | None = None
    auto_remove: bool = True
    binds: list[NonEmptyStr] | None = None
    network_mode: NonEmptyStr | None = None
    tty: bool = False
    labels: dict[str, str] | None = None
    platform: NonEmptyStr | None = None
    privileged: bool | None = None
    anonymous_volumes: list[NonEmptyStr] | None = None
    create_extras: dict[str, Any] | None = None
    ttl_seconds: PositiveInt | None = None
    resources: Resources | None = None
    placement: Placement | None = None  # cluster mode only
    fast_exec: bool | None = None  # exec runs through a resident command channel (None: the setting)


def _env_list(env: dict[str, str] | list[str] | None) -> list[str] | None:
    if env is None:
        return None
    if isinstance(env, dict):
        return [f"{key}={value}" for key, value in env.items()]
    return list(env)


def _device_requests(gpus: Literal["all"] | list[str]) -> list[dict[str, Any]]:
    if gpus == "all":
        return [{"Driver": "", "Count": -1, "DeviceIDs": None, "Capabilities": [["gpu"]]}]
    return [{"Driver": "", "Count": 0, "DeviceIDs": list(gpus), "Capabilities": [["gpu"]]}]


def _host_config(opts: ContainerOpts) -> dict[str, Any]:
    # Init reaps the zombies that killed exec children would otherwise leave behind.
    host: dict[str, Any] = {"AutoRemove": opts.auto_remove, "Init": True}
    if opts.binds is not None:
        host["Binds"] = list(opts.binds)
    if opts.network_mode is not None:
        host["NetworkMode"] = opts.network_mode
    if opts.privileged is not None:
        host["Privileged"] = opts.privileged
    resources = opts.resources
    if resources is not None:
        if resources.memory_bytes is not None:
            host["Memory"] = resources.memory_bytes
        if resources.nano_cpus is not None:
            host["NanoCpus"] = resources.nano_cpus
        if resources.pids_limit is not None:
            host["PidsLimit"] = resources.pids_limit
        if resources.gpus is not None:
            host["DeviceRequests"] = _device_requests(resources.gpus)
    return host


def build_create_body(opts: ContainerOpts, instance: str) -> dict[str, Any]:
    """The engine's create body: the options, the runner's labels, then ``createExtras`` merged
    last (``HostConfig`` shallowly), every key in the engine's one spelling."""
    runner_labels = {MANAGED_LABEL: "true", INSTANCE_LABEL: instance}
    if opts.ttl_seconds is not None:
        runner_labels[TTL_LABEL] = str(opts.ttl_seconds)
    if opts.fast_exec is not None:
        runner_labels[FAST_EXEC_LABEL] = "true" if opts.fast_exec else "false"
    labels = {**(opts.labels or {}), **runner_labels}
    body: dict[str, Any] = {"Image": opts.image, "Tty": opts.tty, "Labels": labels, "HostConfig": _host_config(opts)}
    if opts.cmd is not None:
        body["Cmd"] = list(opts.cmd)
    if opts.entrypoint is not None:
        body["Entrypoint"] = [opts.entrypoint] if isinstance(opts.entrypoint, str) else list(opts.entrypoint)
    env = _env_list(opts.env)
    if env is not None:
        body["Env"] = env
    if opts.working_dir:
        body["WorkingDir"] = opts.working_dir
    if opts.anonymous_volumes:
        body["Volumes"] = {path: {} for path in opts.anonymous_volumes}
    extras = normalize_create_body(opts.create_extras or {})
    extra_host = extras.pop("HostConfig", None)
    body.update(extras)
    if isinstance(extra_host, dict):
        body["HostConfig"] = {**body["HostConfig"], **extra_host}
    elif extra_host is not None:
        body["HostConfig"] = extra_host
    # extras may bring their own labels; the runner's own always stay
    merged_labels = body.get("Labels")
    body["Labels"] = {**merged_labels, **runner_labels} if isinstance(merged_labels, dict) else labels
    return body
