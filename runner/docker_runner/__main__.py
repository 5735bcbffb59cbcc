"""``docker-runner`` / ``python -m docker_runner``: settings -> uvicorn."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from . import envfile, log_format
from .policy.checker import PolicyError
from .runtime import Runtime
from .server import ListenError, RunnerServer, bind_listener, uvicorn_config
from .settings import Settings, SettingsError
from .workloads.pool_config import PoolError


def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="docker-runner", description="Docker Engine behind a signed HTTP API.")
    parser.add_argument("--host", help="listen address (DOCKER_RUNNER_HOST, default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="listen port, 0 for any free one (DOCKER_RUNNER_PORT, default 7071)")
    parser.add_argument("--log-level", choices=["debug", "info", "warning", "error"], help="(DOCKER_RUNNER_LOG_LEVEL)")
    parser.add_argument("--env-file", type=Path, help="read variables the environment does not set from this file")
    parser.add_argument(
        "--ensure-secret",
        action="store_true",
        help="when no shared secret is configured, generate one into --env-file",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = _arguments(argv)
    if args.ensure_secret:
        if args.env_file is None:
            print("docker-runner: --ensure-secret needs --env-file", file=sys.stderr)
            return 2
        if envfile.ensure_secret(args.env_file):
            print(f"docker-runner: generated a shared secret into {args.env_file} ({envfile.SECRET_VARIABLE})")
    if args.env_file is not None and args.env_file.exists():
        envfile.load(args.env_file)
    try:
        settings = Settings.from_env().with_overrides(host=args.host, port=args.port, log_level=args.log_level)
        runtime = Runtime.create(settings)
    except (SettingsError, PolicyError, PoolError) as exc:
        print(f"docker-runner: {exc}", file=sys.stderr)
        return 2
    log_format.configure(settings.log_level, settings.log_json)
    try:
        listener = bind_listener(settings.host, settings.port)
    except ListenError as exc:
        print(f"docker-runner: {exc}", file=sys.stderr)
        return 2
    RunnerServer(uvicorn_config(settings, runtime), runtime).run(sockets=[listener])
    return 0


if __name__ == "__main__":
    sys.exit(main())
