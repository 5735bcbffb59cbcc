"""A container's final create body as a one-replica Swarm service (pure).

The policy has checked the create body already; this only translates it, field by field, into the
service's ContainerSpec, resources and placement, and refuses (400, naming the field, "not
available with Swarm placement") what a service cannot express: ``privileged``, a
``networkMode`` of ``container:...``, and any ``createExtras`` key without a service equivalent.

Resources are both limits and reservations: Swarm places by reservations, the kernel enforces the
limits. GPUs become a reservation of the ``gpu`` generic resource, which only nodes that advertise
it can satisfy (else the placement answers ``no_capacity``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import ApiError, validation_error

AUTO_REMOVE_LABEL = "dev.docker-runner.auto-remove"  # on the service: remove it once its task has ended
# on the service: a runner follows its container and removes it; a manager removes it only when its
# task ended long ago (that runner is gone)
FOLLOWED_LABEL = "dev.docker-runner.followed"
STOP_GRACE_NS = 2_000_000_000  # a short grace: busybox sleep ignores SIGTERM, a 10 s stop helps nobody
GPU_RESOURCE = "gpu"
NOT_AVAILABLE = "not available with Swarm placement"

# Create-body keys the service expresses, and where in the ContainerSpec they go.
_CONFIG_TO_SPEC = {
    "Image": "Image",
    "Entrypoint": "Command",
    "Cmd": "Args",
    "Env": "Env",
    "WorkingDir": "Dir",
    "User": "User",
    "Hostname": "Hostname",
    "Tty": "TTY",
    "OpenStdin": "OpenStdin",
    "Labels": "Labels",
    "StopSignal": "StopSignal",
    "Healthcheck": "HealthCheck",
}
# Create-body keys that are fine to drop: a service task is never attached to by the engine's
# create (attach happens after), and a service has its own stop grace.
_CONFIG_IGNORED = {"AttachStdin", "AttachStdout", "AttachStderr", "StdinOnce", "StopTimeout", "ArgsEscaped"}
_HOST_TO_SPEC = {
    "Init": "Init",
    "ReadonlyRootfs": "ReadOnly",
    "CapAdd": "CapabilityAdd",
    "CapDrop": "CapabilityDrop",
    "Sysctls": "Sysctls",
    "GroupAdd": "Groups",
    "ExtraHosts": "Hosts",
}
# HostConfig keys handled on their own (resources, mounts, network), or meaningless for a task.
_HOST_SPECIAL = {"Memory", "NanoCpus", "PidsLimit", "DeviceRequests", "Binds", "Mounts", "NetworkMode", "LogConfig"}
_HOST_IGNORED = {"AutoRemove", "RestartPolicy"}


def _not_available(field: str) -> ApiError:
    return validation_error(field, NOT_AVAILABLE)


def check_expressible(opts_privileged: bool | None, network_mode: str | None, extras: Mapping[str, Any]) -> None:
    """The fields of a start request a service cannot carry, named as the client wrote them."""
    if opts_privileged:
        raise _not_available("privileged")
    if network_mode is not None and network_mode.startswith("container:"):
        raise _not_available("networkMode")
    for key, value in extras.items():
        if key == "HostConfig" and isinstance(value, Mapping):
            for host_key in value:
                if host_key not in _HOST_TO_SPEC and host_key not in _HOST_SPECIAL and host_key not in _HOST_IGNORED:
                    raise _not_available(f"createExtras.HostConfig.{host_key}")
        elif key not in _CONFIG_TO_SPEC and key not in _CONFIG_IGNORED and key != "HostConfig":
            raise _not_available(f"createExtras.{key}")


def _mount(bind: str) -> dict[str, Any]:
    source, _, rest = bind.partition(":")
    target, _, mode = rest.partition(":")
    kind = "bind" if source.startswith("/") else "volume"
    return {"Type": kind, "Source": source, "Target": target, "ReadOnly": "ro" in mode.split(",")}


def _resources(host: Mapping[str, Any], reserve: Mapping[str, Any]) -> dict[str, Any]:
    """Limits from the final body (what the kernel enforces, the policy's ceilings included);
    reservations from what the request asked for (what Swarm places by)."""
    limits: dict[str, Any] = {}
    reservations: dict[str, Any] = {}
    if host.get("Memory"):
        limits["MemoryBytes"] = int(host["Memory"])
    if host.get("NanoCpus"):
        limits["NanoCPUs"] = int(host["NanoCpus"])
    if host.get("PidsLimit") and int(host["PidsLimit"]) > 0:
        limits["Pids"] = int(host["PidsLimit"])
    if reserve.get("memoryBytes"):
        reservations["MemoryBytes"] = int(reserve["memoryBytes"])
    if reserve.get("nanoCpus"):
        reservations["NanoCPUs"] = int(reserve["nanoCpus"])
    gpus = _gpu_count(host.get("DeviceRequests") or [])
    if gpus:
        reservations["GenericResources"] = [{"DiscreteResourceSpec": {"Kind": GPU_RESOURCE, "Value": gpus}}]
    return {"Limits": limits, "Reservations": reservations}


def _gpu_count(requests: Sequence[Mapping[str, Any]]) -> int:
    count = 0
    for request in requests:
        ids = request.get("DeviceIDs") or []
        count += len(ids) if ids else max(1, int(request.get("Count") or 0))
    return count


def _networks(mode: str | None) -> list[dict[str, str]]:
    if mode in (None, "", "default", "bridge"):
        return []  # the engine's own default for a task
    return [{"Target": mode}]


def _preference(item: str | Mapping[str, Any]) -> dict[str, Any]:
    """``spread=node.labels.zone`` (the CLI's form), a bare descriptor, or the API's own object."""
    if isinstance(item, Mapping):
        return dict(item)
    return {"Spread": {"SpreadDescriptor": item.removeprefix("spread=")}}


def service_spec(
    name: str,
    body: Mapping[str, Any],
    constraints: Sequence[str] = (),
    preferences: Sequence[str | Mapping[str, Any]] = (),
    reserve: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The service of one replica that runs ``body``'s container, never restarted; ``reserve`` is the
    request's ``resources`` (camelCase), reserved on the node Swarm picks."""
    container: dict[str, Any] = {"StopGracePeriod": STOP_GRACE_NS}
    for key, spec_key in _CONFIG_TO_SPEC.items():
        if body.get(key) is not None:
            container[spec_key] = body[key]
    host: Mapping[str, Any] = body.get("HostConfig") or {}
    for key, spec_key in _HOST_TO_SPEC.items():
        if host.get(key) is not None:
            container[spec_key] = host[key]
    mounts = [_mount(bind) for bind in host.get("Binds") or []] + list(host.get("Mounts") or [])
    if mounts:
        container["Mounts"] = mounts
    if body.get("Volumes"):
        container.setdefault("Mounts", []).extend({"Type": "volume", "Target": target} for target in body["Volumes"])
    labels = dict(body.get("Labels") or {})
    service_labels = {**labels, AUTO_REMOVE_LABEL: "true" if host.get("AutoRemove") else "false"}
    task: dict[str, Any] = {
        "ContainerSpec": container,
        "Resources": _resources(host, reserve or {}),
        "RestartPolicy": {"Condition": "none", "MaxAttempts": 0},
        "Placement": {
            "Constraints": list(constraints),
            "Preferences": [_preference(item) for item in preferences],
        },
    }
    networks = _networks(host.get("NetworkMode"))
    if networks:
        task["Networks"] = networks
    log = host.get("LogConfig") or {}
    if log.get("Type"):
        task["LogDriver"] = {"Name": log["Type"], "Options": dict(log.get("Config") or {})}
    return {"Name": name, "Labels": service_labels, "TaskTemplate": task, "Mode": {"Replicated": {"Replicas": 1}}}
