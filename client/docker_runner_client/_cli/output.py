"""What the commands print (pure but for the two emit functions): aligned tables for people, JSON
for scripts (one document, or one compact object per line for streams), durations."""

from __future__ import annotations

import dataclasses
import json
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

_CAMEL_BOUNDARY = re.compile(r"_([a-z0-9])")
SHORT_ID = 12


def camel(name: str) -> str:
    """``ttl_left_seconds`` -> ``ttlLeftSeconds``: the runner's own spelling on the wire."""
    return _CAMEL_BOUNDARY.sub(lambda match: match.group(1).upper(), name)


def to_json(value: Any) -> Any:
    """A typed result as JSON values: dataclasses become objects with the runner's camelCase keys,
    bytes become text (UTF-8, undecodable bytes replaced)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {camel(item.name): to_json(getattr(value, item.name)) for item in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(key): to_json(item) for key, item in value.items()}
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, (list, tuple)):
        return [to_json(item) for item in value]
    return value


def table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """Columns aligned on the widest cell, two spaces apart; the last column is not padded."""
    all_rows = [list(headers), *([str(cell) for cell in row] for row in rows)]
    widths = [max(len(row[index]) for row in all_rows) for index in range(len(headers))]
    lines = []
    for row in all_rows:
        cells = [cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=False)]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
    return "\n".join(lines)


def duration(seconds: float | None) -> str:
    """``45s``, ``9m58s``, ``2h05m``, ``3d04h``; ``-`` for None."""
    if seconds is None:
        return "-"
    whole = max(0, int(seconds))
    days, rest = divmod(whole, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours:02d}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def ago(epoch_ms: int | None, now: float) -> str:
    """How long before ``now`` (epoch seconds) a time in epoch ms was: ``5m02s ago``; ``-`` for none."""
    if not epoch_ms:
        return "-"
    return duration(now - epoch_ms / 1000) + " ago"


def short_id(identifier: str, full: bool = False) -> str:
    return identifier if full else identifier[:SHORT_ID]


def emit_table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> None:
    print(table(headers, rows))


def emit_json(document: Any, *, line: bool = False) -> None:
    """One JSON document (indented), or with ``line`` one compact object on a line, flushed."""
    if line:
        sys.stdout.write(json.dumps(to_json(document), separators=(",", ":"), ensure_ascii=False) + "\n")
    else:
        sys.stdout.write(json.dumps(to_json(document), indent=2, ensure_ascii=False) + "\n")
    sys.stdout.flush()
