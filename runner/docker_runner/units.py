"""Sizes, counts and flags as people write them (``512m``, ``1.5`` CPUs, ``all`` GPUs, ``true``), parsed (pure).

Shared by the settings (the job defaults) and the job requests; each parser raises ``ValueError``
with a message its caller prefixes with the variable or field it read.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from typing import Literal

MIN_MEMORY_BYTES = 6 * 1024 * 1024  # the engine refuses less
MIN_CPUS = 0.01

Gpus = Literal["all"] | tuple[str, ...] | None

_MEMORY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([bkmgt]?)(?:i?b)?\s*$", re.I)
_MEMORY_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def parse_memory(value: str | int) -> int:
    """Bytes from an integer or a size such as ``512m`` or ``2g`` (ValueError when it is neither)."""
    if isinstance(value, bool):
        raise ValueError("must be a number of bytes or a size such as 512m")
    if isinstance(value, int):
        number = value
    else:
        match = _MEMORY.match(value)
        if match is None:
            raise ValueError(f"must be a number of bytes or a size such as 512m, got {value!r}")
        number = int(float(match.group(1)) * _MEMORY_UNITS[match.group(2).lower()])
    if number < MIN_MEMORY_BYTES:
        raise ValueError(f"must be at least {MIN_MEMORY_BYTES} bytes (6m), got {value!r}")
    return number


def parse_cpus(value: float | str) -> int:
    """Nano CPUs from a number of CPUs such as ``2`` or ``0.5``."""
    try:
        cpus = float(value)
    except ValueError:
        raise ValueError(f"must be a number of CPUs such as 1.5, got {value!r}") from None
    if not math.isfinite(cpus) or cpus < MIN_CPUS:
        raise ValueError(f"must be a number of CPUs of at least {MIN_CPUS}, got {value!r}")
    return round(cpus * 1_000_000_000)


def parse_gpus(value: str | Iterable[str] | None) -> Gpus:
    """``all``, device ids (a list or comma-separated), or none (``none``, empty, None)."""
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        if text.lower() == "all":
            return "all"
        if text.lower() in ("", "none"):
            return None
        items = text.split(",")
    else:
        items = list(value)
    ids = tuple(item.strip() for item in items)
    if not ids:
        return None
    if any(not item or item.lower() in ("all", "none") for item in ids):
        raise ValueError('must be "all", "none" or device ids such as "0,1"')
    return ids


def parse_flag(value: str | None, default: bool) -> bool:
    """``true``/``false``/``1``/``0`` (a literal ``false`` means false); absent or empty: ``default``."""
    if value is None or value == "":
        return default
    lowered = value.strip().lower()
    if lowered in ("true", "1"):
        return True
    if lowered in ("false", "0"):
        return False
    raise ValueError("must be true, false, 1 or 0")
