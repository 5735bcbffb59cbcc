"""The ``.env`` file: read it under the environment, and give it a secret when it has none."""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import MutableMapping
from pathlib import Path

SECRET_VARIABLE = "DOCKER_RUNNER_SHARED_SECRET"
SECRET_FILE_VARIABLE = "DOCKER_RUNNER_SHARED_SECRET_FILE"  # the secret read from a file instead
_LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$")


def parse(text: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in text.splitlines():
        if line.lstrip().startswith("#"):
            continue
        match = _LINE.match(line)
        if not match:
            continue
        name, value = match.groups()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        values[name] = value
    return values


def load(path: Path, environ: MutableMapping[str, str] | None = None) -> None:
    """Set every variable of the file that the environment does not already set."""
    env = os.environ if environ is None else environ
    for name, value in parse(path.read_text(encoding="utf-8")).items():
        env.setdefault(name, value)


def ensure_secret(path: Path, environ: MutableMapping[str, str] | None = None) -> bool:
    """Write a fresh secret into ``path`` unless one is configured (or a file for it); True when one was written."""
    env = os.environ if environ is None else environ
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    values = parse(text)
    if any(env.get(name) or values.get(name) for name in (SECRET_VARIABLE, SECRET_FILE_VARIABLE)):
        return False
    line = f"{SECRET_VARIABLE}={secrets.token_urlsafe(48)}"
    pattern = re.compile(rf"^\s*{SECRET_VARIABLE}\s*=.*$", re.M)
    if pattern.search(text):
        text = pattern.sub(line, text, count=1)
    else:
        text = text + ("" if not text or text.endswith("\n") else "\n") + line + "\n"
    path.write_text(text, encoding="utf-8")
    path.chmod(0o600)
    return True
