"""The engine's create body, spelled one way (pure).

The engine decodes JSON with Go's encoding/json, which matches object keys to struct fields
case-insensitively, folding the Kelvin sign to ``k`` and the long s to ``s``, and decodes a
repeated field over the earlier one. ``hostconfig``, ``HOSTCONFIG`` and ``HostConfig`` all reach
the same field, so a check that reads only ``HostConfig`` could be walked around.
:func:`normalize_create_body` rewrites every key of the fields the engine knows into its one
spelling, merging repeats the way the engine would, and refuses keys it does not know: what the
policy checks afterwards is then exactly what the engine will read.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import validation_error

# Go's case folding maps these two non-ASCII letters onto ASCII ones.
_GO_FOLD = {"\u212a": "k", "\u017f": "s"}


def fold(key: str) -> str:
    return "".join(_GO_FOLD.get(char, char.lower() if char.isascii() else char) for char in key)


CONFIG_FIELDS = [
    "Hostname",
    "Domainname",
    "User",
    "AttachStdin",
    "AttachStdout",
    "AttachStderr",
    "ExposedPorts",
    "Tty",
    "OpenStdin",
    "StdinOnce",
    "Env",
    "Cmd",
    "Healthcheck",
    "ArgsEscaped",
    "Image",
    "Volumes",
    "WorkingDir",
    "Entrypoint",
    "NetworkDisabled",
    "MacAddress",
    "OnBuild",
    "Labels",
    "StopSignal",
    "StopTimeout",
    "Shell",
    "HostConfig",
    "NetworkingConfig",
]

HOST_CONFIG_FIELDS = [
    "Binds",
    "ContainerIDFile",
    "LogConfig",
    "NetworkMode",
    "PortBindings",
    "RestartPolicy",
    "AutoRemove",
    "VolumeDriver",
    "VolumesFrom",
    "CapAdd",
    "CapDrop",
    "CgroupnsMode",
    "Dns",
    "DnsOptions",
    "DnsSearch",
    "ExtraHosts",
    "GroupAdd",
    "IpcMode",
    "Cgroup",
    "Links",
    "OomScoreAdj",
    "PidMode",
    "Privileged",
    "PublishAllPorts",
    "ReadonlyRootfs",
    "SecurityOpt",
    "StorageOpt",
    "Tmpfs",
    "UTSMode",
    "UsernsMode",
    "ShmSize",
    "Sysctls",
    "Runtime",
    "ConsoleSize",
    "Isolation",
    "CpuShares",
    "Memory",
    "NanoCpus",
    "CgroupParent",
    "BlkioWeight",
    "BlkioWeightDevice",
    "BlkioDeviceReadBps",
    "BlkioDeviceWriteBps",
    "BlkioDeviceReadIOps",
    "BlkioDeviceWriteIOps",
    "CpuPeriod",
    "CpuQuota",
    "CpuRealtimePeriod",
    "CpuRealtimeRuntime",
    "CpusetCpus",
    "CpusetMems",
    "Devices",
    "DeviceCgroupRules",
    "DeviceRequests",
    "KernelMemory",
    "KernelMemoryTCP",
    "MemoryReservation",
    "MemorySwap",
    "MemorySwappiness",
    "OomKillDisable",
    "PidsLimit",
    "Ulimits",
    "CpuCount",
    "CpuPercent",
    "IOMaximumIOps",
    "IOMaximumBandwidth",
    "Mounts",
    "MaskedPaths",
    "ReadonlyPaths",
    "Init",
]

# Nested objects whose fields the policy reads: each maps a field to the fields of its objects.
_NESTED: dict[str, tuple[str, ...]] = {
    "LogConfig": ("Type", "Config"),
    "Mounts": ("Target", "Source", "Type", "ReadOnly", "Consistency", "BindOptions", "VolumeOptions", "TmpfsOptions"),
    "BindOptions": ("Propagation", "NonRecursive"),
    "VolumeOptions": ("NoCopy", "Labels", "DriverConfig"),
    "DriverConfig": ("Name", "Options"),
    "TmpfsOptions": ("SizeBytes", "Mode"),
    "Devices": ("PathOnHost", "PathInContainer", "CgroupPermissions"),
    "DeviceRequests": ("Driver", "Count", "DeviceIDs", "Capabilities", "Options"),
    "RestartPolicy": ("Name", "MaximumRetryCount"),
    "Ulimits": ("Name", "Soft", "Hard"),
    "PortBinding": ("HostIp", "HostPort"),
    "NetworkingConfig": ("EndpointsConfig",),
    "EndpointSettings": (
        "IPAMConfig",
        "Links",
        "Aliases",
        "NetworkID",
        "EndpointID",
        "Gateway",
        "IPAddress",
        "IPPrefixLen",
        "IPv6Gateway",
        "GlobalIPv6Address",
        "GlobalIPv6PrefixLen",
        "MacAddress",
        "DriverOpts",
        "DNSNames",
        "GwPriority",
    ),
    "IPAMConfig": ("IPv4Address", "IPv6Address", "LinkLocalIPs"),
}
# Objects keyed by the caller (ports, network names) whose values are engine objects of a kind.
_MAPS = {"PortBindings": "PortBinding", "EndpointsConfig": "EndpointSettings"}
# Fields whose value is data keyed by the caller (labels, sysctls, ...): their keys stay as given.
_OPAQUE = {"Labels", "Config", "Options", "Sysctls", "StorageOpt", "Tmpfs", "ExposedPorts", "Volumes", "DriverOpts"}
_OPAQUE |= {"Healthcheck", "ConsoleSize", "BlkioWeightDevice", "Capabilities"}
_OPAQUE |= {"BlkioDeviceReadBps", "BlkioDeviceWriteBps", "BlkioDeviceReadIOps", "BlkioDeviceWriteIOps"}


def _index(names: tuple[str, ...] | list[str]) -> dict[str, str]:
    return {fold(name): name for name in names}


_CONFIG_INDEX = _index(CONFIG_FIELDS)
_HOST_INDEX = _index(HOST_CONFIG_FIELDS)
_NESTED_INDEX = {name: _index(fields) for name, fields in _NESTED.items()}


def _merge(existing: Any, value: Any) -> Any:
    """A repeated key over an earlier one: objects merge field by field, anything else replaces."""
    if isinstance(existing, dict) and isinstance(value, dict):
        return {**existing, **value}
    return value


def _normalize_value(name: str, value: Any, where: str) -> Any:
    if name in _MAPS and isinstance(value, dict):
        return {key: _normalize_value(_MAPS[name], item, f"{where}.{key}") for key, item in value.items()}
    if name in _OPAQUE or name not in _NESTED_INDEX:
        return value
    if isinstance(value, list):
        return [_normalize_object(item, _NESTED_INDEX[name], f"{where}[{i}]") for i, item in enumerate(value)]
    return _normalize_object(value, _NESTED_INDEX[name], where)


def _normalize_object(value: Any, index: Mapping[str, str], where: str) -> Any:
    if not isinstance(value, dict):
        return value
    normalized: dict[str, Any] = {}
    for key, item in value.items():
        name = index.get(fold(key))
        if name is None:
            raise validation_error(f"{where}.{key}", "is not a field the engine knows")
        item = _normalize_value(name, item, f"{where}.{name}")
        if name == "HostConfig" and isinstance(item, dict):
            item = _normalize_object(item, _HOST_INDEX, "HostConfig")
        normalized[name] = _merge(normalized[name], item) if name in normalized else item
    return normalized


def normalize_create_body(body: Mapping[str, Any]) -> dict[str, Any]:
    """Every key in its one spelling, repeats merged; an unknown key is a 400 naming it."""
    result = _normalize_object(dict(body), _CONFIG_INDEX, "createExtras")
    assert isinstance(result, dict)
    return result


def normalize_host_config(host: Mapping[str, Any]) -> dict[str, Any]:
    result = _normalize_object(dict(host), _HOST_INDEX, "createExtras.HostConfig")
    assert isinstance(result, dict)
    return result
