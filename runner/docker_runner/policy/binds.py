"""Bind mounts of host paths: which the policy allows, checked on the filesystem the engine mounts from.

The engine resolves a bind source on the host when it mounts it, following every symlink on the
way, and creates a missing ``Binds`` source the same way. A lexical check is not enough where
containers can write: one could plant ``evil -> /`` under an allowed prefix. So a bind source must
exist as the runner sees it, below its rule's source not one component may be a symlink, and a
writable rule fixes the depth of its sources (the directories they go through stay out of any
container's reach). The runner must see each rule's source at the same path as the engine's host
(mounted read-only into a runner that runs in a container); where it does not, the bind is refused.
"""

from __future__ import annotations

import os
import posixpath
import stat
from collections.abc import Iterable

from .fields import Fields, denied
from .model import Allow, BindRule, host_path_parts

ENGINE_SOCKETS = ("/var/run/docker.sock", "/run/docker.sock")


def _below(source: str, path: str) -> tuple[str, ...] | None:
    """The components of ``path`` below ``source``; None when it is not under it."""
    if path == source:
        return ()
    prefix = source.rstrip("/") + "/"
    return tuple(path[len(prefix) :].split("/")) if path.startswith(prefix) else None


def _on_disk_refusal(source: str, below: tuple[str, ...]) -> str | None:
    """Why the path cannot be trusted to stay under ``source`` when the engine mounts it; None if it can."""
    if not os.path.exists(source):
        return (
            f"cannot be verified: the runner does not see {source}; mount it into the runner read-only "
            f"at the same path ({source}:{source}:ro)"
        )
    current = source
    for name in below:
        current = posixpath.join(current, name)
        try:
            mode = os.lstat(current).st_mode
        except FileNotFoundError:
            return f"{current} does not exist: create it first (the engine would create it through any symlink)"
        except OSError as exc:
            return f"cannot be verified: {current}: {exc.strerror}"
        if stat.S_ISLNK(mode):
            return f"{current} is a symbolic link: the engine would follow it out of {source}"
    return None


class MountChecker:
    """Binds, Mounts and volume drivers of one create body against one Allow."""

    def __init__(self, engine_sockets: Iterable[str] = ENGINE_SOCKETS) -> None:
        paths = {posixpath.normpath(path) for path in engine_sockets}
        self._sockets = tuple(paths | {os.path.realpath(path) for path in paths})

    def check(self, host: Fields, allow: Allow) -> None:
        for index, bind in enumerate(host.texts("Binds")):
            source, separator, rest = bind.partition(":")
            # "/path" alone is an anonymous volume at /path; "name:/path" a named volume
            if separator and source.startswith("/"):
                options = rest.partition(":")[2].split(",")
                self.check_host_path(source, "ro" in options, f"HostConfig.Binds[{index}]", allow)
        for mount in host.objects("Mounts"):
            self._check_mount(mount, allow)
        driver = host.text("VolumeDriver")
        if driver and driver != "local" and not allow.volume_drivers:
            raise denied("HostConfig.VolumeDriver", "volumeDrivers", "volume drivers are denied")

    def _check_mount(self, mount: Fields, allow: Allow) -> None:
        kind = mount.text("Type")
        if kind == "bind":
            self.check_host_path(mount.text("Source") or "", mount.flag("ReadOnly") is True, mount.where, allow)
        elif kind == "volume":
            # a volume driver's options can bind any host path (type=none,o=bind,device=/)
            driver = mount.child("VolumeOptions").mapping("DriverConfig")
            if driver and not allow.volume_drivers:
                raise denied(f"{mount.where}.VolumeOptions.DriverConfig", "volumeDrivers", "volume drivers are denied")
        elif kind != "tmpfs":
            raise denied(f"{mount.where}.Type", "binds", f"mount type {kind!r} is denied")

    def check_host_path(self, source: str, read_only: bool, field: str, allow: Allow) -> None:
        parts = host_path_parts(source)
        if parts is None:
            raise denied(field, "binds", f"{source!r} must be an absolute path without '..'")
        path = "/" + "/".join(parts)
        refusals = [self._refusal(rule, path, read_only) for rule in allow.binds]
        if None in refusals:
            return
        why = next((refusal for refusal in refusals if refusal), None)
        if why is None:
            why = "exposes the engine socket" if self._exposes_engine(path) else "host path bind mounts are denied"
        raise denied(field, "binds", f"{source}: {why}")

    def _refusal(self, rule: BindRule, path: str, read_only: bool) -> str | None:
        """Why ``rule`` does not allow ``path`` ("" when the path is not under it); None when it does."""
        below = _below(rule.source, path)
        if below is None:
            return ""
        depth = rule.exact_depth
        if depth == 0 and below:
            return f"only {rule.source} itself may be mounted (its rule's depth is 0)"
        if depth is not None and len(below) != depth:
            return f"must be exactly {depth} directory level(s) below {rule.source} (its rule's depth)"
        if rule.read_only and not read_only:
            return "may only be mounted read-only"
        refusal = _on_disk_refusal(rule.source, below)
        if refusal is not None:
            return refusal
        resolved = posixpath.join(os.path.realpath(rule.source), *below)
        if below and (self._exposes_engine(path) or self._exposes_engine(resolved)):
            return "exposes the engine socket: only a rule naming exactly this path allows it"
        return None

    def _exposes_engine(self, path: str) -> bool:
        prefix = path.rstrip("/") + "/"
        return any(socket == path or socket.startswith(prefix) for socket in self._sockets)
