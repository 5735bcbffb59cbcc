"""The runner's configuration: read from the environment in this one place, frozen afterwards."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from . import units

MIN_SECRET_BYTES = 32
SECRET_PREFIX = "DOCKER_RUNNER_SHARED_SECRET"  # every variable holding a secret starts so


class SettingsError(ValueError):
    """A variable is missing or malformed; the message names it."""


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise SettingsError(f"{name} must be at least {minimum}, got {value}")
    return value


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name} must be true or false, got {raw!r}")


def _log_json(env: Mapping[str, str]) -> bool:
    raw = env.get("DOCKER_RUNNER_LOG_FORMAT", "").strip().lower() or "text"
    if raw not in ("text", "json"):
        raise SettingsError(f"DOCKER_RUNNER_LOG_FORMAT must be text or json, got {raw!r}")
    return raw == "json"


def _nonce_store(env: Mapping[str, str]) -> str:
    raw = env.get("DOCKER_RUNNER_NONCE_STORE", "").strip() or "memory"
    if raw != "memory" and urlsplit(raw).scheme not in ("redis", "rediss", "unix"):
        raise SettingsError(f"DOCKER_RUNNER_NONCE_STORE must be memory or a redis:// URL, got {raw!r}")
    return raw


def _cluster(env: Mapping[str, str]) -> str | None:
    raw = env.get("DOCKER_RUNNER_CLUSTER", "").strip().lower()
    if raw not in ("", "swarm"):
        raise SettingsError(f"DOCKER_RUNNER_CLUSTER must be swarm (or unset), got {raw!r}")
    return raw or None


def _scope_all(env: Mapping[str, str]) -> bool:
    raw = env.get("DOCKER_RUNNER_SCOPE", "").strip().lower() or "managed"
    if raw not in ("managed", "all"):
        raise SettingsError(f"DOCKER_RUNNER_SCOPE must be managed or all, got {raw!r}")
    return raw == "all"


def _job_setting(env: Mapping[str, str], name: str, parse: Any, default: str) -> Any:
    try:
        return parse(env.get(name, "").strip() or default)
    except ValueError as exc:
        raise SettingsError(f"{name} {exc}") from None


def _secret(env: Mapping[str, str], name: str, file_name: str) -> str:
    """The secret in ``name``, or read from the file ``file_name`` names (a Swarm or Kubernetes secret),
    its trailing newline stripped; SettingsError naming the variable when both are set or the file
    cannot be read."""
    path = env.get(file_name, "").strip()
    if not path:
        return env.get(name, "")
    if env.get(name, ""):
        raise SettingsError(f"{name} and {file_name} are both set: set one of them")
    try:
        secret = Path(path).read_text(encoding="utf-8").rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise SettingsError(f"{file_name} names a file that cannot be read ({path}: {reason})") from None
    if not secret:
        raise SettingsError(f"{file_name} names an empty file ({path})")
    return secret


def passthrough(
    names: Iterable[str], environ: Mapping[str, str], secrets: Iterable[str]
) -> tuple[tuple[str, str], ...]:
    """The named variables that are set, with their values; ValueError for the runner's secret."""
    secret_values = {secret for secret in secrets if secret}
    pairs = []
    for name in names:
        if name.upper().startswith(SECRET_PREFIX):
            raise ValueError(f"must not name the runner's secret ({name})")
        if name not in environ:
            continue
        if environ[name] in secret_values:
            raise ValueError(f"{name} holds the runner's secret")
        pairs.append((name, environ[name]))
    return tuple(pairs)


def _job_passthrough(env: Mapping[str, str], secrets: Iterable[str]) -> tuple[tuple[str, str], ...]:
    names = [name.strip() for name in env.get("DOCKER_RUNNER_JOB_ENV_PASSTHROUGH", "").split(",") if name.strip()]
    try:
        return passthrough(names, env, secrets)
    except ValueError as exc:
        raise SettingsError(f"DOCKER_RUNNER_JOB_ENV_PASSTHROUGH {exc}") from None


@dataclass(frozen=True)
class Settings:
    shared_secret: str = field(repr=False)
    host: str = "127.0.0.1"
    port: int = 7071
    log_level: str = "info"
    log_json: bool = False
    insecure_dev: bool = False
    clock_skew_ms: int = 60_000
    nonce_cache_size: int = 100_000
    nonce_store: str = "memory"  # or redis://host:port/db, shared by the runners of a cluster
    max_body_bytes: int = 64 * 1024 * 1024
    max_archive_bytes: int = 4 * 1024 * 1024 * 1024
    max_output_bytes: int = 10 * 1024 * 1024
    engine_threads: int = 32
    stream_threads: int = 64
    reaper_interval_ms: int = 10_000
    shutdown_grace_seconds: int = 5
    docker_host: str | None = None
    docker_api_version: str = "auto"
    docker_timeout_seconds: int = 60
    spool_dir: Path | None = None
    instance: str = "default"
    shared_secret_next: str | None = field(default=None, repr=False)
    policy_path: Path | None = None
    scope_all: bool = False
    sse_ping_ms: int = 15_000
    allowed_origins: tuple[str, ...] = ()
    ws_ping_interval_seconds: float = 20
    ws_ping_timeout_seconds: float = 20
    ws_compression: bool = False
    pools: str | None = None
    pool_acquire_timeout_ms: int = 10_000
    pool_maintenance_ms: int = 5_000
    test_cmd: str = "cd /testbed && sh run_tests.sh 2>&1"
    max_patch_bytes: int = 1024 * 1024 * 1024
    job_memory_bytes: int = 2 * 1024**3
    job_nano_cpus: int = 2_000_000_000
    job_gpus: units.Gpus = None
    job_env_passthrough: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    job_timeout_ms: int = 3_600_000
    job_max_active: int = 16
    job_buffer_events: int = 1000
    job_buffer_bytes: int = 2 * 1024 * 1024
    job_max_line_bytes: int = 1024 * 1024
    job_history: int = 100
    ui: bool = False
    ui_dir: Path | None = None
    cluster: str | None = None  # "swarm": one runner per Swarm node; None: this host only
    peers: str | None = None  # a DNS name whose addresses are the peers, or comma-separated URLs
    placement_timeout_ms: int = 30_000
    peer_timeout_ms: int = 1_500
    fast_exec: bool = False
    fast_exec_channels: int = 8
    fast_exec_max_channels: int = 512

    def __post_init__(self) -> None:
        if not self.shared_secret:
            raise SettingsError("DOCKER_RUNNER_SHARED_SECRET is not set")
        for name, secret in (
            ("DOCKER_RUNNER_SHARED_SECRET", self.shared_secret),
            ("DOCKER_RUNNER_SHARED_SECRET_NEXT", self.shared_secret_next or ""),
        ):
            if secret and len(secret.encode("utf-8")) < MIN_SECRET_BYTES and not self.insecure_dev:
                raise SettingsError(
                    f"{name} must be at least {MIN_SECRET_BYTES} bytes "
                    "(or set DOCKER_RUNNER_INSECURE_DEV=true for local experiments)"
                )

    @property
    def secrets(self) -> tuple[str, ...]:
        """Every secret a request may be signed with: the current one, and the next during a rotation."""
        return (self.shared_secret, self.shared_secret_next) if self.shared_secret_next else (self.shared_secret,)

    @property
    def replay_window_ms(self) -> int:
        """How long a nonce is remembered: twice the skew, so no accepted timestamp outlives it."""
        return 2 * self.clock_skew_ms

    def with_overrides(self, **changes: Any) -> Settings:
        return replace(self, **{key: value for key, value in changes.items() if value is not None})

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        spool = env.get("DOCKER_RUNNER_SPOOL_DIR", "").strip()
        policy = env.get("DOCKER_RUNNER_POLICY", "").strip()
        secret = _secret(env, "DOCKER_RUNNER_SHARED_SECRET", "DOCKER_RUNNER_SHARED_SECRET_FILE")
        secret_next = _secret(env, "DOCKER_RUNNER_SHARED_SECRET_NEXT", "DOCKER_RUNNER_SHARED_SECRET_NEXT_FILE")
        return cls(
            shared_secret=secret,
            host=env.get("DOCKER_RUNNER_HOST", "").strip() or "127.0.0.1",
            port=_int(env, "DOCKER_RUNNER_PORT", 7071),
            log_level=env.get("DOCKER_RUNNER_LOG_LEVEL", "").strip().lower() or "info",
            log_json=_log_json(env),
            insecure_dev=_bool(env, "DOCKER_RUNNER_INSECURE_DEV", False),
            clock_skew_ms=_int(env, "DOCKER_RUNNER_CLOCK_SKEW_MS", 60_000, minimum=1),
            nonce_cache_size=_int(env, "DOCKER_RUNNER_NONCE_CACHE_SIZE", 100_000, minimum=1),
            nonce_store=_nonce_store(env),
            max_body_bytes=_int(env, "DOCKER_RUNNER_MAX_BODY_BYTES", 64 * 1024 * 1024, minimum=1),
            max_archive_bytes=_int(env, "DOCKER_RUNNER_MAX_ARCHIVE_BYTES", 4 * 1024 * 1024 * 1024, minimum=1),
            max_output_bytes=_int(env, "DOCKER_RUNNER_MAX_OUTPUT_BYTES", 10 * 1024 * 1024, minimum=1),
            engine_threads=_int(env, "DOCKER_RUNNER_ENGINE_THREADS", 32, minimum=1),
            stream_threads=_int(env, "DOCKER_RUNNER_STREAM_THREADS", 64, minimum=1),
            reaper_interval_ms=_int(env, "DOCKER_RUNNER_REAPER_INTERVAL_MS", 10_000, minimum=100),
            shutdown_grace_seconds=_int(env, "DOCKER_RUNNER_SHUTDOWN_GRACE_S", 5),
            docker_host=env.get("DOCKER_HOST", "").strip() or None,
            docker_api_version=env.get("DOCKER_API_VERSION", "").strip() or "auto",
            docker_timeout_seconds=_int(env, "DOCKER_RUNNER_DOCKER_TIMEOUT_S", 60, minimum=1),
            spool_dir=Path(spool) if spool else None,
            instance=env.get("DOCKER_RUNNER_INSTANCE", "").strip() or "default",
            shared_secret_next=secret_next.strip() or None,
            policy_path=Path(policy) if policy else None,
            scope_all=_scope_all(env),
            sse_ping_ms=_int(env, "DOCKER_RUNNER_SSE_PING_MS", 15_000, minimum=100),
            allowed_origins=tuple(
                origin.strip().rstrip("/")
                for origin in env.get("DOCKER_RUNNER_ALLOWED_ORIGINS", "").split(",")
                if origin.strip()
            ),
            ws_ping_interval_seconds=_int(env, "DOCKER_RUNNER_WS_PING_INTERVAL_S", 20, minimum=1),
            ws_ping_timeout_seconds=_int(env, "DOCKER_RUNNER_WS_PING_TIMEOUT_S", 20, minimum=1),
            ws_compression=_bool(env, "DOCKER_RUNNER_WS_COMPRESSION", False),
            pools=env.get("DOCKER_RUNNER_POOLS", "").strip() or None,
            pool_acquire_timeout_ms=_int(env, "DOCKER_RUNNER_POOL_ACQUIRE_TIMEOUT_MS", 10_000),
            pool_maintenance_ms=_int(env, "DOCKER_RUNNER_POOL_MAINTENANCE_MS", 5_000, minimum=100),
            test_cmd=env.get("DOCKER_RUNNER_TEST_CMD", "").strip() or "cd /testbed && sh run_tests.sh 2>&1",
            max_patch_bytes=_int(env, "DOCKER_RUNNER_MAX_PATCH_BYTES", 1024 * 1024 * 1024, minimum=1),
            job_memory_bytes=_job_setting(env, "DOCKER_RUNNER_JOB_MEMORY", units.parse_memory, "2g"),
            job_nano_cpus=_job_setting(env, "DOCKER_RUNNER_JOB_CPUS", units.parse_cpus, "2.0"),
            job_gpus=_job_setting(env, "DOCKER_RUNNER_JOB_GPUS", units.parse_gpus, "none"),
            job_env_passthrough=_job_passthrough(env, (secret, secret_next)),
            job_timeout_ms=_int(env, "DOCKER_RUNNER_JOB_TIMEOUT_MS", 3_600_000),
            job_max_active=_int(env, "DOCKER_RUNNER_JOB_MAX_ACTIVE", 16, minimum=1),
            job_buffer_events=_int(env, "DOCKER_RUNNER_JOB_BUFFER_EVENTS", 1000, minimum=1),
            job_buffer_bytes=_int(env, "DOCKER_RUNNER_JOB_BUFFER_BYTES", 2 * 1024 * 1024, minimum=1),
            job_max_line_bytes=_int(env, "DOCKER_RUNNER_JOB_MAX_LINE_BYTES", 1024 * 1024, minimum=1),
            job_history=_int(env, "DOCKER_RUNNER_JOB_HISTORY", 100, minimum=1),
            ui=_bool(env, "DOCKER_RUNNER_UI", False),
            ui_dir=Path(ui_dir) if (ui_dir := env.get("DOCKER_RUNNER_UI_DIR", "").strip()) else None,
            cluster=_cluster(env),
            peers=env.get("DOCKER_RUNNER_PEERS", "").strip() or None,
            placement_timeout_ms=_int(env, "DOCKER_RUNNER_PLACEMENT_TIMEOUT_MS", 30_000, minimum=100),
            peer_timeout_ms=_int(env, "DOCKER_RUNNER_PEER_TIMEOUT_MS", 1_500, minimum=100),
            fast_exec=_bool(env, "DOCKER_RUNNER_FAST_EXEC", False),
            fast_exec_channels=_int(env, "DOCKER_RUNNER_FAST_EXEC_CHANNELS", 8, minimum=1),
            fast_exec_max_channels=_int(env, "DOCKER_RUNNER_FAST_EXEC_MAX_CHANNELS", 512, minimum=1),
        )
