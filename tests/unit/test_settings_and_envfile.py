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


def test_secrets_read_from_files_without_their_trailing_newline(tmp_path: Path) -> None:
    """DOCKER_RUNNER_SHARED_SECRET_FILE and _NEXT_FILE: each file's content is the secret, less its newline."""
    current, following = tmp_path / "current", tmp_path / "next"
    current.write_text(SECRET + "\n")
    following.write_text("n" * 32 + "\r\n")
    settings = Settings.from_env(
        {"DOCKER_RUNNER_SHARED_SECRET_FILE": str(current), "DOCKER_RUNNER_SHARED_SECRET_NEXT_FILE": str(following)}
    )
    assert settings.secrets == (SECRET, "n" * 32)


@pytest.mark.parametrize(
    ("variable", "file_variable"),
    [
        ("DOCKER_RUNNER_SHARED_SECRET", "DOCKER_RUNNER_SHARED_SECRET_FILE"),
        ("DOCKER_RUNNER_SHARED_SECRET_NEXT", "DOCKER_RUNNER_SHARED_SECRET_NEXT_FILE"),
    ],
)
def test_a_secret_and_its_file_both_set_is_refused(tmp_path: Path, variable: str, file_variable: str) -> None:
    """A secret given twice, as a value and as a file, fails the start naming both variables."""
    path = tmp_path / "secret"
    path.write_text(SECRET)
    env = {"DOCKER_RUNNER_SHARED_SECRET": SECRET, variable: SECRET, file_variable: str(path)}
    with pytest.raises(SettingsError, match=f"{variable} and {file_variable} are both set"):
        Settings.from_env(env)


@pytest.mark.parametrize("file_variable", ["DOCKER_RUNNER_SHARED_SECRET_FILE", "DOCKER_RUNNER_SHARED_SECRET_NEXT_FILE"])
def test_an_unreadable_or_empty_secret_file_names_its_variable(tmp_path: Path, file_variable: str) -> None:
    """A missing file, a directory and an empty file each fail the start naming the _FILE variable."""
    empty = tmp_path / "empty"
    empty.write_text("\n")
    for path in (tmp_path / "missing", tmp_path, empty):
        env = {"DOCKER_RUNNER_SHARED_SECRET": SECRET, file_variable: str(path)}
        if file_variable == "DOCKER_RUNNER_SHARED_SECRET_FILE":
            del env["DOCKER_RUNNER_SHARED_SECRET"]
        with pytest.raises(SettingsError, match=file_variable):
            Settings.from_env(env)


def test_a_short_secret_from_a_file_is_refused(tmp_path: Path) -> None:
    """The length rule holds for a secret read from a file too."""
    path = tmp_path / "secret"
    path.write_text("short\n")
    with pytest.raises(SettingsError, match="at least 32 bytes"):
        Settings.from_env({"DOCKER_RUNNER_SHARED_SECRET_FILE": str(path)})


def test_job_passthrough_refuses_a_secret_read_from_a_file(tmp_path: Path) -> None:
    """A passed-through variable holding the secret of the file is refused like one holding the variable's."""
    path = tmp_path / "secret"
    path.write_text(SECRET + "\n")
    env = {"DOCKER_RUNNER_SHARED_SECRET_FILE": str(path), "LEAK": SECRET, "DOCKER_RUNNER_JOB_ENV_PASSTHROUGH": "LEAK"}
    with pytest.raises(SettingsError, match="LEAK holds the runner's secret"):
        Settings.from_env(env)


def test_ensure_secret_leaves_a_secret_file_alone(tmp_path: Path) -> None:
    """With DOCKER_RUNNER_SHARED_SECRET_FILE set (environment or .env) no secret is generated beside it."""
    path = tmp_path / ".env"
    assert not envfile.ensure_secret(path, {"DOCKER_RUNNER_SHARED_SECRET_FILE": "/run/secrets/x"})
    assert not path.exists()
    path.write_text("DOCKER_RUNNER_SHARED_SECRET=\nDOCKER_RUNNER_SHARED_SECRET_FILE=/run/secrets/x\n")
    assert not envfile.ensure_secret(path, {})
