"""The policy file's shape, its defaults, and what makes a policy unusable (pure)."""

from __future__ import annotations

import ipaddress
from itertools import combinations
from typing import Literal

import msgspec

from .images import ImageReference, image_matches, parse_pattern

GiB = 1024**3
MiB = 1024**2
Namespace = Literal["network", "pid", "ipc", "uts", "userns", "cgroup"]
# Sources that would lead past the check: /proc/<pid>/root is every process's filesystem.
_UNVERIFIABLE_SOURCES = ("/proc",)


class PolicyError(ValueError):
    """The policy file cannot be used; the message says why."""


def host_path_parts(path: str) -> tuple[str, ...] | None:
    """The components of an absolute path (``//`` and ``.`` dropped); None when it is relative or
    has a ``..`` (which the kernel resolves through symlinks, not lexically)."""
    if not path.startswith("/"):
        return None
    parts = tuple(part for part in path.split("/") if part not in ("", "."))
    return None if ".." in parts else parts


class BindRule(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    """Host paths under ``source`` that may be bind-mounted.

    ``depth`` is how many path components below ``source`` a bind source has, exactly: 0 the source
    itself, 1 its direct children (one directory per workspace). A writable rule has depth 0 unless
    it says otherwise (containers write there, so the directories a bind source goes through must
    be out of their reach); a read-only rule without depth allows any path below its source.
    """

    source: str  # the engine socket (or a parent of it) only when named exactly
    read_only: bool = False  # true: mounts under this source must be read-only
    depth: int | None = None

    def __post_init__(self) -> None:
        parts = host_path_parts(self.source)
        if parts is None:
            raise ValueError(f"bind source {self.source!r} must be an absolute path without '..'")
        self.source = "/" + "/".join(parts)
        if any(self.source == root or self.source.startswith(root + "/") for root in _UNVERIFIABLE_SOURCES):
            raise ValueError(f"bind source {self.source!r}: /proc leads to every process's filesystem")
        if self.depth is not None and self.depth < 0:
            raise ValueError(f"bind source {self.source!r}: depth must be 0 or more")

    @property
    def exact_depth(self) -> int | None:
        """The depth every bind source under this rule must have; None: any."""
        return self.depth if self.depth is not None or self.read_only else 0


class Allow(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    """Each field allows one thing the default policy denies."""

    privileged: bool = False
    binds: list[BindRule] = msgspec.field(default_factory=list)
    host_namespaces: list[Namespace] = msgspec.field(default_factory=list)
    container_namespaces: bool = False  # network/pid/ipc mode "container:<id>", Cgroup "container:<id>"
    # user-defined networks to join, by name pattern: any by default (the protocol's networkMode)
    networks: list[str] = msgspec.field(default_factory=lambda: ["*"])
    links: bool = False  # legacy links: they copy the linked container's environment
    cap_add: list[str] = msgspec.field(default_factory=list)
    devices: bool = False
    security_opts: list[str] = msgspec.field(default_factory=list)  # more options allowed, exactly as written
    weaker_security_opt: bool = False  # any security option at all: seccomp/apparmor unconfined, ...
    sysctls: list[str] = msgspec.field(default_factory=list)  # names, or prefixes ending in "*"
    gpus: bool = False
    any_device_requests: bool = False  # device requests other than plain GPUs (CDI, other drivers)
    volume_drivers: bool = False  # VolumeDriver and volume driver options (which can bind host paths)
    volumes_from: bool = False
    cgroup_parent: bool = False
    unmasked_paths: bool = False  # MaskedPaths / ReadonlyPaths overrides
    oom_protection: bool = False  # OomScoreAdj below 0, OomKillDisable
    unlimited_swap: bool = False  # MemorySwap -1 or more swap than the memory limit
    runtimes: list[str] = msgspec.field(default_factory=list)  # OCI runtimes other than the engine's default
    publish_host_ips: list[str] = msgspec.field(default_factory=lambda: ["127.0.0.1", "::1"])
    log_drivers: list[str] = msgspec.field(default_factory=lambda: ["json-file", "local", "none"])

    def __post_init__(self) -> None:
        for address in self.publish_host_ips:
            try:
                ipaddress.ip_address(address)
            except ValueError:
                raise ValueError(f"publishHostIps: {address!r} is not an IP address") from None


class Ceiling(msgspec.Struct, forbid_unknown_fields=True):
    default: int
    max: int


def _default_ulimits() -> dict[str, int]:
    # The maximum of soft and hard for each ulimit a request may set; -1: no maximum. These only
    # bound the container's own resources (memlock counts against its memory limit). Left out:
    # rtprio, rttime and nice (scheduling against the host), msgqueue and sigpending (kernel memory).
    unbounded = ("nproc", "core", "stack", "memlock", "cpu", "fsize", "data", "as", "locks", "rss")
    return {"nofile": 1048576, **dict.fromkeys(unbounded, -1)}


class Limits(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    memory_bytes: Ceiling = msgspec.field(default_factory=lambda: Ceiling(2 * GiB, 16 * GiB))
    nano_cpus: Ceiling = msgspec.field(default_factory=lambda: Ceiling(2_000_000_000, 8_000_000_000))
    pids_limit: Ceiling = msgspec.field(default_factory=lambda: Ceiling(1024, 8192))
    log_max_size_bytes: Ceiling = msgspec.field(default_factory=lambda: Ceiling(10 * MiB, 100 * MiB))
    log_max_files: Ceiling = msgspec.field(default_factory=lambda: Ceiling(3, 10))
    # the engine's own memory, not the container's: log mode=non-blocking buffers up to this much
    log_max_buffer_bytes: Ceiling = msgspec.field(default_factory=lambda: Ceiling(1 * MiB, 16 * MiB))
    ulimits: dict[str, int] = msgspec.field(default_factory=_default_ulimits)


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

    def __post_init__(self) -> None:
        for pattern in [*self.images, *(p for override in self.overrides for p in override.images)]:
            parse_pattern(pattern)
        check_rules_apart([rule for allow in self.allow_sets() for rule in allow.binds])

    def allow_sets(self) -> list[Allow]:
        return [self.allow, *(override.allow for override in self.overrides)]

    def for_image(self, image: ImageReference) -> tuple[Allow, Limits]:
        for override in self.overrides:
            if image_matches(image, override.images):
                return override.allow, override.limits or self.limits
        return self.allow, self.limits


def _nested(a: str, b: str) -> bool:
    return a == b or a == "/" or b == "/" or a.startswith(b + "/") or b.startswith(a + "/")


def _shape(rule: BindRule) -> tuple[str, bool, int | None]:
    return rule.source, rule.read_only, rule.exact_depth


def check_rules_apart(rules: list[BindRule]) -> None:
    """A writable rule's area and any other rule's must not nest (unless the rules are the same):
    containers could otherwise plant symlinks in directories another rule's sources go through."""
    for first, second in combinations(rules, 2):
        writable = not (first.read_only and second.read_only)
        if writable and _shape(first) != _shape(second) and _nested(first.source, second.source):
            raise ValueError(
                f"bind rules {first.source!r} and {second.source!r} overlap and one is writable: "
                "give them separate directories"
            )
