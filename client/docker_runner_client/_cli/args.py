"""Reading the command line's own values (pure but for reading a named local file or stdin)."""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .exits import CliError

_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNIX_TIME = re.compile(r"^\d{1,12}(\.\d{1,9})?$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3_600, "d": 86_400}
STDIN = "-"


def key_values(pairs: Sequence[str] | None, option: str) -> dict[str, str]:
    """``["a=1", "b=x=y"]`` -> ``{"a": "1", "b": "x=y"}``; a pair without ``=`` or key is a usage error."""
    values: dict[str, str] = {}
    for pair in pairs or ():
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise CliError("bad_argument", f"{option} takes KEY=VALUE, not {pair!r}")
        values[key] = value
    return values


def filters(pairs: Sequence[str] | None) -> dict[str, list[str]]:
    """``--filter`` pairs in the engine's filter form: ``type=container`` twice keeps both values.
    Without a ``type`` filter the stream has container events only, as the runner's default does."""
    wanted: dict[str, list[str]] = {}
    for pair in pairs or ():
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise CliError("bad_argument", f"--filter takes KEY=VALUE (type=container, label=app=web), not {pair!r}")
        wanted.setdefault(key, []).append(value)
    wanted.setdefault("type", ["container"])
    return wanted


def timestamp(value: str | None, now: float) -> str | None:
    """``--since``/``--until``: Unix seconds as given, or a duration before ``now`` (``30s``, ``10m``,
    ``2h``, ``1d``) as Unix seconds."""
    if value is None:
        return None
    if _UNIX_TIME.match(value):
        return value
    relative = _RELATIVE.match(value)
    if relative is None:
        raise CliError("bad_argument", f"expected Unix seconds or a duration such as 10m, not {value!r}")
    return str(int(now - float(relative.group(1)) * _UNIT_SECONDS[relative.group(2)]))


def seconds(value: str) -> float:
    """argparse type of a duration in seconds (a float, 0 or more)."""
    try:
        parsed = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, such as 5 or 0.5, not {value!r}") from None
    if not 0 <= parsed < float("inf"):
        raise argparse.ArgumentTypeError(f"expected seconds, 0 or more, not {value!r}")
    return parsed


def milliseconds(value: float | None) -> int | None:
    return None if value is None else round(value * 1000)


def remote(argument: str) -> tuple[str, str] | None:
    """``CONTAINER:PATH`` -> (container, path); None for a local path (``-``, one that starts with
    ``/`` or ``.``, or has no colon), as docker cp tells them apart."""
    if argument == STDIN or argument.startswith(("/", ".")):
        return None
    container, sep, path = argument.partition(":")
    if not sep or not container:
        return None
    return container, path or "/"


def command(words: Sequence[str], what: str) -> list[str]:
    """The command after the options (a leading ``--`` dropped); it may not be empty."""
    argv = list(words[1:] if words[:1] == ["--"] else words)
    if not argv:
        raise CliError("bad_argument", f"{what} needs a command")
    return argv


def read_bytes(source: str) -> bytes:
    """The bytes of a local file, or of stdin for ``-``."""
    if source == STDIN:
        return sys.stdin.buffer.read()
    try:
        return Path(source).read_bytes()
    except OSError as exc:
        raise CliError("local_file", f"cannot read {source}: {exc.strerror or exc}") from None


def json_value(value: str) -> Any:
    """``--input``: JSON text, or ``@FILE`` (``@-`` for stdin) holding it."""
    text = read_bytes(value[1:]).decode("utf-8", "replace") if value.startswith("@") else value
    try:
        return json.loads(text)
    except ValueError as exc:
        raise CliError("bad_argument", f"--input is not JSON: {exc}") from None
