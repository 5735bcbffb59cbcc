"""What a holder of the secret may ask of the host: the create policy (pure, but for reading the
filesystem under allowed bind sources).

Checked against the final engine create body (after ``createExtras`` and every other field are
merged and every key is in its one spelling, see :mod:`engine_fields`). Everything that reaches
outside the container is denied unless a policy entry allows it; resource ceilings get a default
when the request sets none and a maximum it cannot pass. A denial is 403 ``policy_denied`` naming
the field and the rule; a value of the wrong type is 400 ``validation_error`` naming the field.

::

    policy_model    the policy file's shape and defaults
    policy_images   image references and patterns
    policy_binds    host paths (binds, mounts, volume drivers)
    policy_host     namespaces, networks, capabilities, security options, ports, devices
    policy_limits   memory, CPUs, PIDs, swap, ulimits, logs
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import msgspec
import yaml

from ..errors import validation_error
from .binds import ENGINE_SOCKETS, MountChecker
from .fields import Fields, denied
from .host import (
    check_capabilities,
    check_device_requests,
    check_namespaces,
    check_networking_config,
    check_oom,
    check_port_bindings,
    check_security_opt,
    check_switches,
    check_sysctls,
)
from .images import ImageReference, image_matches, parse_reference
from .limits import apply_limits, check_log_config
from .model import Allow, BindRule, Ceiling, Limits, Override, Policy, PolicyError

log = logging.getLogger("docker_runner.policy")

__all__ = [
    "ENGINE_SOCKETS",
    "Allow",
    "BindRule",
    "Ceiling",
    "CreateChecker",
    "Limits",
    "Override",
    "Policy",
    "PolicyError",
    "check_image",
    "container_references",
    "load_policy",
    "sockets_for",
]


def load_policy(path: Path | None) -> Policy:
    """The policy in a JSON or YAML file, or the secure defaults when there is none."""
    if path is None:
        return Policy()
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        policy = msgspec.convert(document, Policy)
    except (OSError, yaml.YAMLError) as exc:
        raise PolicyError(f"DOCKER_RUNNER_POLICY: cannot read {path}: {exc}") from exc
    except msgspec.ValidationError as exc:
        raise PolicyError(f"DOCKER_RUNNER_POLICY: {path}: {exc}") from exc
    for rule in (rule for allow in policy.allow_sets() for rule in allow.binds):
        if not rule.read_only and rule.depth is None:
            log.warning(
                "DOCKER_RUNNER_POLICY: the writable bind rule %s allows %s itself only; "
                "set depth (1 for %s/<name>) to allow the directories below it",
                rule.source,
                rule.source,
                rule.source,
            )
    return policy


def _reference(image: Any, field: str) -> ImageReference:
    if not isinstance(image, str):
        raise validation_error(field, "an image name is required")
    try:
        return parse_reference(image)
    except ValueError as exc:
        raise validation_error(field, f"{image!r} is not an image reference: {exc}") from None


def check_image(policy: Policy, image: Any, field: str = "image") -> ImageReference:
    """The image's reference, when the policy allows it; ``field`` names the image in a 400."""
    reference = _reference(image, field)
    if policy.images and not image_matches(reference, policy.images):
        raise denied("Image", "images", f"{image!r} ({reference}) is not in the image allow-list")
    return reference


class CreateChecker:
    """Checks one create body against one policy, and fills in the ceilings' defaults."""

    def __init__(self, policy: Policy, engine_sockets: Iterable[str] = ENGINE_SOCKETS) -> None:
        self._policy = policy
        self._mounts = MountChecker(engine_sockets)

    def check(self, body: dict[str, Any]) -> dict[str, Any]:
        reference = check_image(self._policy, body.get("Image"), "Image")
        allow, limits = self._policy.for_image(reference)
        if body.get("HostConfig") is None:
            body["HostConfig"] = {}
        if not isinstance(body["HostConfig"], dict):
            raise validation_error("HostConfig", "must be an object")
        host = Fields(body["HostConfig"], "HostConfig")
        check_switches(host, allow)
        check_oom(host, allow)
        check_namespaces(host, allow)
        check_networking_config(Fields(body, ""), allow)
        self._mounts.check(host, allow)
        check_capabilities(host, allow)
        check_security_opt(host, allow)
        check_sysctls(host, allow)
        check_port_bindings(host, allow)
        check_device_requests(host, allow)
        apply_limits(host, allow, limits)
        check_log_config(host, allow, limits)
        return body


def container_references(body: dict[str, Any]) -> list[tuple[str, str]]:
    """(field, container reference) for every other container a checked body names: namespaces it
    joins, links, VolumesFrom. The policy cannot see whether they are the runner's: a caller that
    allows these must look each one up in its scope before creating the container."""
    host = body.get("HostConfig") or {}
    found = []
    for field in ("NetworkMode", "PidMode", "IpcMode", "Cgroup"):
        mode = str(host.get(field) or "")
        if mode.lower().startswith("container:"):
            found.append((f"HostConfig.{field}", mode.partition(":")[2]))
    for field in ("Links", "VolumesFrom"):
        for index, entry in enumerate(host.get(field) or []):
            found.append((f"HostConfig.{field}[{index}]", str(entry).split(":", 1)[0]))
    endpoints = (body.get("NetworkingConfig") or {}).get("EndpointsConfig") or {}
    for name, settings in endpoints.items():
        for index, link in enumerate((settings or {}).get("Links") or []):
            found.append((f"NetworkingConfig.EndpointsConfig.{name}.Links[{index}]", str(link).split(":", 1)[0]))
    return found


def sockets_for(docker_host: str | None) -> tuple[str, ...]:
    """The engine socket paths a bind mount must not expose, the configured one included."""
    paths = list(ENGINE_SOCKETS)
    if docker_host and docker_host.startswith("unix://"):
        paths.append(docker_host[len("unix://") :])
    return tuple(paths)
