"""What a holder of the secret may ask of the host: the create policy (pure).

Checked against the final engine create body (after ``createExtras`` and every other field are
merged and every key is in its one spelling, see :mod:`engine_fields`). Everything that reaches
outside the container is denied unless a policy entry allows it; resource ceilings get a default
when the request sets none and a maximum it cannot pass. A denial is 403 ``policy_denied`` naming
the field and the rule.
"""

from __future__ import annotations

import fnmatch
import os
import posixpath
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

import msgspec
import yaml

from .errors import ApiError

GiB = 1024**3
ENGINE_SOCKETS = ("/var/run/docker.sock", "/run/docker.sock")
Namespace = Literal["network", "pid", "ipc", "uts", "userns", "cgroup"]


class PolicyError(ValueError):
    """The policy file cannot be used; the message says why."""


class BindRule(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    source: str  # a host path prefix; the engine socket (or a parent of it) only when named exactly
    read_only: bool = False  # true: mounts under this prefix must be read-only


class Allow(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    """Each field allows one thing the default policy denies."""

    privileged: bool = False
    binds: list[BindRule] = msgspec.field(default_factory=list)
    host_namespaces: list[Namespace] = msgspec.field(default_factory=list)
    container_namespaces: bool = False  # network/pid/ipc mode "container:<id>"
    cap_add: list[str] = msgspec.field(default_factory=list)
    devices: bool = False
    weaker_security_opt: bool = False  # seccomp/apparmor unconfined, no-new-privileges=false, ...
    sysctls: list[str] = msgspec.field(default_factory=list)  # names, or prefixes ending in "*"
    gpus: bool = False
    volume_drivers: bool = False  # VolumeDriver and volume driver options (which can bind host paths)
    volumes_from: bool = False
    cgroup_parent: bool = False
    unmasked_paths: bool = False  # MaskedPaths / ReadonlyPaths overrides
    log_drivers: list[str] = msgspec.field(default_factory=lambda: ["json-file", "local", "none"])


class Ceiling(msgspec.Struct, forbid_unknown_fields=True):
    default: int
    max: int


class Limits(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    memory_bytes: Ceiling = msgspec.field(default_factory=lambda: Ceiling(2 * GiB, 16 * GiB))
    nano_cpus: Ceiling = msgspec.field(default_factory=lambda: Ceiling(2_000_000_000, 8_000_000_000))
    pids_limit: Ceiling = msgspec.field(default_factory=lambda: Ceiling(1024, 8192))
    log_max_size_bytes: Ceiling = msgspec.field(default_factory=lambda: Ceiling(10 * 1024**2, 100 * 1024**2))
    log_max_files: Ceiling = msgspec.field(default_factory=lambda: Ceiling(3, 10))


class Override(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    """For images matching ``images``, ``allow`` (and ``limits`` when given) replace the defaults."""

    images: list[str]
    allow: Allow = msgspec.field(default_factory=Allow)
    limits: Limits | None = None


class Policy(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    images: list[str] = msgspec.field(default_factory=list)  # allow-list of patterns; empty: any image
    allow: Allow = msgspec.field(default_factory=Allow)
    limits: Limits = msgspec.field(default_factory=Limits)
    overrides: list[Override] = msgspec.field(default_factory=list)

    def for_image(self, image: str) -> tuple[Allow, Limits]:
        for override in self.overrides:
            if image_matches(image, override.images):
                return override.allow, override.limits or self.limits
        return self.allow, self.limits


def load_policy(path: Path | None) -> Policy:
    """The policy in a JSON or YAML file, or the secure defaults when there is none."""
    if path is None:
        return Policy()
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        return msgspec.convert(document, Policy)
    except (OSError, yaml.YAMLError) as exc:
        raise PolicyError(f"DOCKER_RUNNER_POLICY: cannot read {path}: {exc}") from exc
    except msgspec.ValidationError as exc:
        raise PolicyError(f"DOCKER_RUNNER_POLICY: {path}: {exc}") from exc


def denied(field: str, rule: str, why: str) -> ApiError:
    return ApiError(
        403, "policy_denied", f"{field}: {why} (policy rule {rule})", details={"field": field, "rule": rule}
    )


def image_matches(image: str, patterns: Iterable[str]) -> bool:
    candidates = {image}
    if "@" not in image and ":" not in image.rsplit("/", 1)[-1]:
        candidates.add(image + ":latest")
    return any(fnmatch.fnmatchcase(candidate, pattern) for pattern in patterns for candidate in candidates)


def check_image(policy: Policy, image: str) -> None:
    if policy.images and not image_matches(image, policy.images):
        raise denied("Image", "images", f"{image!r} is not in the image allow-list")


def _enabled(value: Any) -> bool:
    """Only an absent value or a literal false/empty passes for a switch: anything else counts as on."""
    return value not in (None, False, 0, "", [], {})


class CreateChecker:
    """Checks one create body against one policy, and fills in the ceilings' defaults."""

    def __init__(self, policy: Policy, engine_sockets: Iterable[str] = ENGINE_SOCKETS) -> None:
        self._policy = policy
        self._sockets = tuple(
            {_resolved(path) for path in engine_sockets} | set(map(posixpath.normpath, engine_sockets))
        )

    def check(self, body: dict[str, Any]) -> dict[str, Any]:
        image = body.get("Image")
        if not isinstance(image, str):
            raise denied("Image", "images", "an image name is required")
        check_image(self._policy, image)
        allow, limits = self._policy.for_image(image)
        host = body.get("HostConfig")
        if host is None:
            host = body["HostConfig"] = {}
        if not isinstance(host, dict):
            raise denied("HostConfig", "hostConfig", "must be an object")
        _check_switches(host, allow)
        _check_namespaces(host, allow)
        self._check_mounts(host, allow)
        _check_capabilities(host, allow)
        _check_security_opt(host, allow)
        _check_sysctls(host, allow)
        apply_limits(host, limits)
        _check_log_config(host, allow, limits)
        return body

    def _check_mounts(self, host: dict[str, Any], allow: Allow) -> None:
        for index, bind in enumerate(_as_list(host.get("Binds"), "HostConfig.Binds")):
            field = f"HostConfig.Binds[{index}]"
            if not isinstance(bind, str):
                raise denied(field, "binds", "must be a string")
            source, _, rest = bind.partition(":")
            bind_options = rest.partition(":")[2].split(",") if rest else []
            if source.startswith("/"):  # otherwise a named volume
                self.check_host_path(source, "ro" in bind_options, field, allow)
        for index, mount in enumerate(_as_list(host.get("Mounts"), "HostConfig.Mounts")):
            self._check_mount(mount, f"HostConfig.Mounts[{index}]", allow)
        driver = host.get("VolumeDriver")
        if _enabled(driver) and driver != "local" and not allow.volume_drivers:
            raise denied("HostConfig.VolumeDriver", "volumeDrivers", "volume drivers are denied")

    def _check_mount(self, mount: Any, field: str, allow: Allow) -> None:
        if not isinstance(mount, dict):
            raise denied(field, "binds", "must be an object")
        kind = mount.get("Type")
        if kind == "bind":
            self.check_host_path(str(mount.get("Source") or ""), mount.get("ReadOnly") is True, field, allow)
        elif kind == "volume":
            volume_options = mount.get("VolumeOptions") or {}
            # a volume driver's options can bind any host path (type=none,o=bind,device=/)
            driver = volume_options.get("DriverConfig") if isinstance(volume_options, dict) else volume_options
            if _enabled(driver) and not allow.volume_drivers:
                raise denied(f"{field}.VolumeOptions.DriverConfig", "volumeDrivers", "volume drivers are denied")
        elif kind != "tmpfs":
            raise denied(f"{field}.Type", "binds", f"mount type {kind!r} is denied")

    def check_host_path(self, source: str, read_only: bool, field: str, allow: Allow) -> None:
        path = _resolved(source)
        exposes_engine = any(sock == path or sock.startswith(path.rstrip("/") + "/") for sock in self._sockets)
        for rule in allow.binds:
            prefix = _resolved(rule.source)
            if exposes_engine:
                if path != prefix:
                    continue
            elif not (path == prefix or path.startswith(prefix.rstrip("/") + "/")):
                continue
            if rule.read_only and not read_only:
                raise denied(field, "binds", f"{source} may only be mounted read-only")
            return
        why = "exposes the engine socket" if exposes_engine else "host path bind mounts are denied"
        raise denied(field, "binds", f"{source} {why}")


def _resolved(path: str) -> str:
    """The path without ``..``; where it exists on this host, without symlinks too (a symlink planted
    under an allowed prefix must not lead out of it)."""
    normalized = posixpath.normpath(path)
    return posixpath.normpath(os.path.realpath(normalized)) if os.path.lexists(normalized) else normalized


def _as_list(value: Any, field: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise denied(field, "hostConfig", "must be a list")
    return value


# (HostConfig field, policy rule, the Allow attribute that lifts it)
_SWITCHES = (
    ("Privileged", "privileged", "privileged"),
    ("Devices", "devices", "devices"),
    ("DeviceCgroupRules", "devices", "devices"),
    ("DeviceRequests", "gpus", "gpus"),
    ("VolumesFrom", "volumesFrom", "volumes_from"),
    ("CgroupParent", "cgroupParent", "cgroup_parent"),
)
# Present at all, even empty, these replace the engine's masks over /proc and /sys.
_MASKS = (("MaskedPaths", "unmaskedPaths"), ("ReadonlyPaths", "unmaskedPaths"))


def _check_switches(host: dict[str, Any], allow: Allow) -> None:
    for field, rule, attribute in _SWITCHES:
        if _enabled(host.get(field)) and not getattr(allow, attribute):
            raise denied(f"HostConfig.{field}", rule, "denied by default")
    for field, rule in _MASKS:
        if field in host and host[field] is not None and not allow.unmasked_paths:
            raise denied(f"HostConfig.{field}", rule, "overriding the engine's masked paths is denied")


_NAMESPACE_FIELDS = (
    ("NetworkMode", "network"),
    ("PidMode", "pid"),
    ("IpcMode", "ipc"),
    ("UTSMode", "uts"),
    ("UsernsMode", "userns"),
    ("CgroupnsMode", "cgroup"),
)


def _check_namespaces(host: dict[str, Any], allow: Allow) -> None:
    for field, namespace in _NAMESPACE_FIELDS:
        mode = str(host.get(field) or "").strip().lower()
        if mode == "host" and namespace not in allow.host_namespaces:
            raise denied(f"HostConfig.{field}", "hostNamespaces", f"the host {namespace} namespace is denied")
        if mode.startswith("container:") and not allow.container_namespaces:
            raise denied(
                f"HostConfig.{field}", "containerNamespaces", "joining another container's namespace is denied"
            )


def _capability(name: Any) -> str:
    text = str(name).strip().upper()
    return text[4:] if text.startswith("CAP_") else text


def _check_capabilities(host: dict[str, Any], allow: Allow) -> None:
    allowed = {_capability(name) for name in allow.cap_add}
    for index, name in enumerate(_as_list(host.get("CapAdd"), "HostConfig.CapAdd")):
        if _capability(name) not in allowed:
            raise denied(f"HostConfig.CapAdd[{index}]", "capAdd", f"capability {name} is denied")


_WEAKENING = re.compile(
    r"^(seccomp[=:].*|apparmor[=:]unconfined|label[=:]disable|label[=:]type:spc_t|systempaths[=:]unconfined"
    r"|no-new-privileges[=:](false|0))$",
    re.I,
)


def _check_security_opt(host: dict[str, Any], allow: Allow) -> None:
    for index, option in enumerate(_as_list(host.get("SecurityOpt"), "HostConfig.SecurityOpt")):
        if _WEAKENING.match(str(option).strip()) and not allow.weaker_security_opt:
            raise denied(f"HostConfig.SecurityOpt[{index}]", "weakerSecurityOpt", f"{option!r} weakens confinement")


def _check_sysctls(host: dict[str, Any], allow: Allow) -> None:
    sysctls = host.get("Sysctls") or {}
    if not isinstance(sysctls, dict):
        raise denied("HostConfig.Sysctls", "sysctls", "must be an object")
    for name in sysctls:
        if not any(fnmatch.fnmatchcase(str(name), pattern) for pattern in allow.sysctls):
            raise denied(f"HostConfig.Sysctls.{name}", "sysctls", "this sysctl is denied")


def _ceiling(host: dict[str, Any], field: str, ceiling: Ceiling, rule: str, unset: Iterable[Any] = (None,)) -> None:
    value = host.get(field)
    if value in unset:
        host[field] = ceiling.default
        return
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0 or value > ceiling.max:
        raise denied(f"HostConfig.{field}", rule, f"must be between 1 and {ceiling.max}, got {value!r}")


def apply_limits(host: dict[str, Any], limits: Limits) -> None:
    _ceiling(host, "Memory", limits.memory_bytes, "limits.memoryBytes", unset=(None, 0))
    _ceiling(host, "PidsLimit", limits.pids_limit, "limits.pidsLimit")
    quota, period = host.get("CpuQuota"), host.get("CpuPeriod")
    if _enabled(quota):
        if not isinstance(quota, int) or quota <= 0:
            raise denied("HostConfig.CpuQuota", "limits.nanoCpus", "must be a positive integer")
        nano = quota * 1_000_000_000 // (period if isinstance(period, int) and period > 0 else 100_000)
        if nano > limits.nano_cpus.max:
            raise denied("HostConfig.CpuQuota", "limits.nanoCpus", f"exceeds {limits.nano_cpus.max} nano CPUs")
    else:
        _ceiling(host, "NanoCpus", limits.nano_cpus, "limits.nanoCpus", unset=(None, 0))


_SIZE = re.compile(r"^\s*(\d+)\s*([kmg]?)b?\s*$", re.I)
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def parse_size(text: str) -> int | None:
    match = _SIZE.match(text)
    return int(match.group(1)) * _UNITS[match.group(2).lower()] if match else None


def _check_log_config(host: dict[str, Any], allow: Allow, limits: Limits) -> None:
    log = host.get("LogConfig") or {}
    if not isinstance(log, dict):
        raise denied("HostConfig.LogConfig", "logDrivers", "must be an object")
    driver = str(log.get("Type") or "json-file")
    if driver not in allow.log_drivers:
        raise denied("HostConfig.LogConfig.Type", "logDrivers", f"log driver {driver!r} is denied")
    if driver not in ("json-file", "local"):
        return
    config = dict(log.get("Config") or {})
    size_text = config.get("max-size")
    size = limits.log_max_size_bytes.default if size_text is None else parse_size(str(size_text))
    if size is None or size <= 0 or size > limits.log_max_size_bytes.max:
        raise denied(
            "HostConfig.LogConfig.Config.max-size",
            "limits.logMaxSizeBytes",
            f"must be at most {limits.log_max_size_bytes.max} bytes",
        )
    files_text = config.get("max-file")
    files = (
        limits.log_max_files.default
        if files_text is None
        else int(str(files_text))
        if str(files_text).isdigit()
        else None
    )
    if files is None or files <= 0 or files > limits.log_max_files.max:
        raise denied(
            "HostConfig.LogConfig.Config.max-file", "limits.logMaxFiles", f"must be at most {limits.log_max_files.max}"
        )
    config["max-size"] = str(size)
    config["max-file"] = str(files)
    host["LogConfig"] = {"Type": driver, "Config": config}


def sockets_for(docker_host: str | None) -> tuple[str, ...]:
    """The engine socket paths a bind mount must not expose, the configured one included."""
    paths = list(ENGINE_SOCKETS)
    if docker_host and docker_host.startswith("unix://"):
        paths.append(docker_host[len("unix://") :])
    return tuple(paths)
