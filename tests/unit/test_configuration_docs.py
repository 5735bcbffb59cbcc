"""Every variable the runner reads is in .env.example and in the README's configuration table."""

from __future__ import annotations

import re
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[2]
SETTINGS = REPOSITORY / "runner" / "docker_runner" / "settings.py"
_VARIABLE = re.compile(r'"((?:DOCKER_RUNNER|DOCKER)_[A-Z0-9_]+)"')


def _read_by_the_runner() -> set[str]:
    return set(_VARIABLE.findall(SETTINGS.read_text())) - {"DOCKER_RUNNER_SHARED_SECRET_"}


def test_every_variable_is_in_env_example() -> None:
    """.env.example lists every variable the settings read (set, or commented out with its default)."""
    example = (REPOSITORY / ".env.example").read_text()
    missing = sorted(name for name in _read_by_the_runner() if not re.search(rf"^#? ?{name}=", example, re.M))
    assert missing == []


def test_every_variable_is_in_the_readme_table() -> None:
    """The README's configuration table has a row for every variable the settings read."""
    readme = (REPOSITORY / "README.md").read_text()
    table = readme[readme.index("## Configuration") : readme.index("## The API at a glance")]
    missing = sorted(name for name in _read_by_the_runner() if f"`{name}`" not in table)
    assert missing == []
