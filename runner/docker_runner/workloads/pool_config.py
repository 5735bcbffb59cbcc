"""``DOCKER_RUNNER_POOLS``: the configured pools, read and checked once at start."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import msgspec
import yaml

from ..containers.spec import ContainerOpts

NonNegative = Annotated[int, msgspec.Meta(ge=0)]
Positive = Annotated[int, msgspec.Meta(ge=1)]


class PoolError(ValueError):
    """DOCKER_RUNNER_POOLS cannot be used; the message says why."""


class PoolConfig(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    image: Annotated[str, msgspec.Meta(min_length=1)]
    min: NonNegative = 1
    max: Positive = 4
    max_age_ms: Positive = 3_600_000
    idle_ttl_ms: Positive = 600_000
    health_cmd: str | list[str] = "true"
    container_opts: dict[str, Any] = msgspec.field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.min > self.max:
            raise ValueError(f"pool {self.image}: min ({self.min}) is above max ({self.max})")

    def opts(self) -> ContainerOpts:
        return msgspec.convert({**self.container_opts, "image": self.image, "autoRemove": False}, ContainerOpts)


def load_pools(raw: str | None) -> list[PoolConfig]:
    """``DOCKER_RUNNER_POOLS``: a JSON list of pools, or the path of a JSON or YAML file holding one."""
    if raw is None or not raw.strip():
        return []
    text = raw
    if not raw.lstrip().startswith(("[", "{")):
        try:
            text = Path(raw.strip()).read_text(encoding="utf-8")
        except OSError as exc:
            raise PoolError(f"DOCKER_RUNNER_POOLS: cannot read {raw.strip()}: {exc}") from exc
    try:
        pools = msgspec.convert(_pool_list(yaml.safe_load(text)), list[PoolConfig])
    except (yaml.YAMLError, msgspec.ValidationError, ValueError) as exc:
        raise PoolError(f"DOCKER_RUNNER_POOLS: {exc}") from exc
    images = [pool.image for pool in pools]
    if len(set(images)) != len(images):
        raise PoolError("DOCKER_RUNNER_POOLS: one pool per image")
    for pool in pools:
        try:
            pool.opts()
        except msgspec.ValidationError as exc:
            raise PoolError(f"DOCKER_RUNNER_POOLS: pool {pool.image}: containerOpts: {exc}") from exc
    return pools


def _pool_list(document: Any) -> Any:
    """The list itself, or the one ``pools`` key of an object: any other key is a typo, not "no pools"."""
    if not isinstance(document, dict):
        return document
    if set(document) != {"pools"}:
        keys = ", ".join(sorted(map(str, document))) or "none"
        raise ValueError(f"an object must have exactly one key, pools (got {keys})")
    return document["pools"]
