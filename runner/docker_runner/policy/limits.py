"""Resource ceilings: a default when the request sets none, a maximum it cannot pass (pure)."""

from __future__ import annotations

import re
from collections.abc import Iterable

from .fields import Fields, denied
from .model import Allow, Ceiling, Limits

_NANO_PER_CPU = 1_000_000_000
_DEFAULT_CPU_PERIOD = 100_000


def _ceiling(host: Fields, field: str, ceiling: Ceiling, rule: str, unset: Iterable[int | None] = (None,)) -> None:
    value = host.number(field)
    if value in unset:
        host.data[field] = ceiling.default
    elif value is None or value <= 0 or value > ceiling.max:
        raise denied(f"HostConfig.{field}", rule, f"must be between 1 and {ceiling.max}, got {value!r}")


def _check_cpu_quota(host: Fields, limits: Limits) -> None:
    quota, period = host.number("CpuQuota"), host.number("CpuPeriod")
    if quota is None or quota <= 0:
        raise denied("HostConfig.CpuQuota", "limits.nanoCpus", "must be a positive integer")
    nano = quota * _NANO_PER_CPU // (period if period is not None and period > 0 else _DEFAULT_CPU_PERIOD)
    if nano > limits.nano_cpus.max:
        raise denied("HostConfig.CpuQuota", "limits.nanoCpus", f"exceeds {limits.nano_cpus.max} nano CPUs")


def _check_swap(host: Fields, allow: Allow) -> None:
    """Swap up to the memory limit (the engine's own default when MemorySwap is unset)."""
    swap = host.number("MemorySwap")
    if swap in (None, 0) or allow.unlimited_swap:
        return
    memory = host.data["Memory"]
    if swap is not None and swap < 0:
        raise denied("HostConfig.MemorySwap", "unlimitedSwap", "unlimited swap defeats the memory limit")
    if swap is not None and swap > 2 * memory:
        raise denied("HostConfig.MemorySwap", "unlimitedSwap", f"must be at most twice Memory ({2 * memory})")


def _check_ulimits(host: Fields, limits: Limits) -> None:
    for ulimit in host.objects("Ulimits"):
        name = ulimit.text("Name") or ""
        maximum = limits.ulimits.get(name)
        if maximum is None:
            raise denied(ulimit.name("Name"), "limits.ulimits", f"ulimit {name!r} is denied")
        for key in ("Soft", "Hard"):
            value = ulimit.number(key)
            if value is not None and maximum != -1 and not 0 <= value <= maximum:
                raise denied(ulimit.name(key), "limits.ulimits", f"{name} must be between 0 and {maximum}")


def apply_limits(host: Fields, allow: Allow, limits: Limits) -> None:
    _ceiling(host, "Memory", limits.memory_bytes, "limits.memoryBytes", unset=(None, 0))
    _ceiling(host, "PidsLimit", limits.pids_limit, "limits.pidsLimit")
    if host.number("CpuQuota"):
        _check_cpu_quota(host, limits)
    else:
        _ceiling(host, "NanoCpus", limits.nano_cpus, "limits.nanoCpus", unset=(None, 0))
    _check_swap(host, allow)
    _check_ulimits(host, limits)


# The engine's units.RAMInBytes: "512", "1.5m", "10MiB", "2 g"
_SIZE = re.compile(r"^(\d{1,20}(?:\.\d{1,20})?) ?([kmgtp]?)i?b?$", re.I | re.ASCII)  # longer is no size
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4, "p": 1024**5}


def parse_size(text: str) -> int | None:
    match = _SIZE.match(text)
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()]) if match else None


def _capped_size(config: dict[str, str], key: str, ceiling: Ceiling, rule: str) -> str:
    text = config.get(key)
    size = ceiling.default if text is None else parse_size(text)
    if size is None or size <= 0 or size > ceiling.max:
        raise denied(f"HostConfig.LogConfig.Config.{key}", rule, f"must be at most {ceiling.max} bytes")
    return str(size)


def _capped_files(config: dict[str, str], ceiling: Ceiling) -> str:
    text = config.get("max-file")
    plain_count = text is not None and text.isascii() and text.isdigit() and len(text) <= 18
    files = ceiling.default if text is None else int(text) if plain_count else None
    if files is None or files <= 0 or files > ceiling.max:
        raise denied("HostConfig.LogConfig.Config.max-file", "limits.logMaxFiles", f"must be at most {ceiling.max}")
    return str(files)


def check_log_config(host: Fields, allow: Allow, limits: Limits) -> None:
    log = host.child("LogConfig")
    driver = log.text("Type") or "json-file"
    if driver not in allow.log_drivers:
        raise denied("HostConfig.LogConfig.Type", "logDrivers", f"log driver {driver!r} is denied")
    config = dict(log.string_map("Config"))
    # mode=non-blocking buffers in the engine's memory, whichever the driver
    if config.get("mode") == "non-blocking" or "max-buffer-size" in config:
        buffer = limits.log_max_buffer_bytes
        config["max-buffer-size"] = _capped_size(config, "max-buffer-size", buffer, "limits.logMaxBufferBytes")
    if driver in ("json-file", "local"):
        config["max-size"] = _capped_size(config, "max-size", limits.log_max_size_bytes, "limits.logMaxSizeBytes")
        config["max-file"] = _capped_files(config, limits.log_max_files)
    host.data["LogConfig"] = {"Type": driver, "Config": config}
