"""Settings from the environment, and the .env file (pure)."""

from __future__ import annotations

from pathlib import Path

import pytest

from docker_runner import envfile
from docker_runner.settings import Settings, SettingsError

SECRET = "s" * 32


def test_defaults() -> None:
    settings = Settings.from_env({"DOCKER_RUNNER_SHARED_SECRET": SECRET})
    assert (settings.host, settings.port, settings.clock_skew_ms) == ("127.0.0.1", 7071, 60_000)
    assert settings.replay_window_ms == 120_000
    assert settings.max_output_bytes == 10 * 1024 * 1024


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({}, "DOCKER_RUNNER_SHARED_SECRET"),
        ({"DOCKER_RUNNER_SHARED_SECRET": "short"}, "DOCKER_RUNNER_SHARED_SECRET"),
        ({"DOCKER_RUNNER_SHARED_SECRET": SECRET, "DOCKER_RUNNER_PORT": "http"}, "DOCKER_RUNNER_PORT"),
        ({"DOCKER_RUNNER_SHARED_SECRET": SECRET, "DOCKER_RUNNER_CLOCK_SKEW_MS": "0"}, "DOCKER_RUNNER_CLOCK_SKEW_MS"),
        ({"DOCKER_RUNNER_SHARED_SECRET": SECRET, "DOCKER_RUNNER_INSECURE_DEV": "maybe"}, "DOCKER_RUNNER_INSECURE_DEV"),
    ],
)
def test_bad_settings_name_the_variable(env: dict[str, str], named: str) -> None:
    with pytest.raises(SettingsError, match=named):
        Settings.from_env(env)


def test_short_secret_allowed_in_insecure_dev_mode() -> None:
    settings = Settings.from_env({"DOCKER_RUNNER_SHARED_SECRET": "short", "DOCKER_RUNNER_INSECURE_DEV": "true"})
    assert settings.insecure_dev


def test_secret_not_in_repr() -> None:
    assert SECRET not in repr(Settings.from_env({"DOCKER_RUNNER_SHARED_SECRET": SECRET}))


def test_env_file_does_not_override_environment(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    path.write_text("# comment\nA=1\nexport B='two words'\nC=\"3\"\nnot a line\n")
    environ = {"A": "from-env"}
    envfile.load(path, environ)
    assert environ == {"A": "from-env", "B": "two words", "C": "3"}


def test_ensure_secret_fills_the_empty_line(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    path.write_text("X=1\nDOCKER_RUNNER_SHARED_SECRET=\nY=2\n")
    assert envfile.ensure_secret(path, {})
    values = envfile.parse(path.read_text())
    assert len(values["DOCKER_RUNNER_SHARED_SECRET"]) >= 32
    assert (values["X"], values["Y"]) == ("1", "2")
    assert not envfile.ensure_secret(path, {})  # a second run keeps the first secret


def test_ensure_secret_respects_the_environment(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    assert not envfile.ensure_secret(path, {"DOCKER_RUNNER_SHARED_SECRET": SECRET})
    assert not path.exists()
