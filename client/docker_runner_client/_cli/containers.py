"""``health``, ``ps``, ``start``, ``stop`` and ``rm``: the runner and its containers."""

from __future__ import annotations

import argparse
import sys
import time

from .._client import HttpDockerRunnerClient
from .._exceptions import DockerRunnerError
from .._models import ContainerOpts, ManagedContainer
from . import args as values
from .commands import Commands, add_command
from .exits import exit_code_for, runner_error_line
from .output import ago, duration, emit_json, emit_table, short_id

PS_HEADERS = ("CONTAINER ID", "NAME", "IMAGE", "STATUS", "CREATED", "TTL LEFT")


def register(commands: Commands) -> None:
    health = add_command(
        commands,
        "health",
        _health,
        "is the runner up, and does it reach its engine?",
        "GET /v1/health and /v1/ready (no secret needed). Exits 0 when both answer, 105 when the "
        "runner is up but its engine is not.",
    )
    health.set_defaults(open_route=True)
    ps = add_command(
        commands,
        "ps",
        _ps,
        "list the runner's containers, with the TTL left of each",
        "The containers in the runner's scope, oldest first: id, name, image, status, age and the "
        "time left of their TTL (- without one; unknown when another runner instance reaps it).",
    )
    ps.add_argument("-a", "--all", action="store_true", help="stopped containers too")
    ps.add_argument("--label", action="append", metavar="KEY=VALUE", help="only containers with this label")
    ps.add_argument("-q", "--quiet", action="store_true", help="print the ids only")
    ps.add_argument("--no-trunc", action="store_true", help="full container ids")
    _register_start(commands)
    stop = add_command(commands, "stop", _stop, "stop containers", "Stop each CONTAINER (stopped or gone is fine).")
    stop.add_argument("-t", "--time", type=int, metavar="SECONDS", help="wait this long before killing (default 10)")
    stop.add_argument("containers", nargs="+", metavar="CONTAINER")
    rm = add_command(
        commands,
        "rm",
        _rm,
        "remove containers",
        "Remove each CONTAINER (a gone one is fine); prints each id. Goes on after a failure and exits "
        "with the code of the first one.",
    )
    rm.add_argument("-f", "--force", action="store_true", help="kill a running container first")
    rm.add_argument("-v", "--volumes", action="store_true", help="remove its anonymous volumes too")
    rm.add_argument("containers", nargs="+", metavar="CONTAINER")


def _register_start(commands: Commands) -> None:
    start = add_command(
        commands,
        "start",
        _start,
        "create and start a container; prints its id",
        "Create and start a container of IMAGE running CMD (the image's own command when none is "
        "given: everything after IMAGE is the command, as for docker run). Prints the full id.",
    )
    start.add_argument("--name", help="the container's name")
    start.add_argument("--ttl", type=int, metavar="SECONDS", help="remove it once unused for this long")
    start.add_argument("--label", action="append", metavar="KEY=VALUE", help="a label (repeatable)")
    start.add_argument("--env", "-e", action="append", metavar="KEY=VALUE", help="an environment variable")
    start.add_argument("--workdir", "-w", help="the working directory")
    start.add_argument("--keep", action="store_true", help="keep it when its command ends (default: removed)")
    start.add_argument(
        "--fast-exec",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="exec runs through resident command channels (default: the runner's DOCKER_RUNNER_FAST_EXEC)",
    )
    start.add_argument("image", metavar="IMAGE")
    start.add_argument("command", nargs=argparse.REMAINDER, metavar="CMD", help="the command and its arguments")


def _health(client: HttpDockerRunnerClient, args: argparse.Namespace) -> int:
    health = client.health()
    failure: DockerRunnerError | None = None
    try:
        ready = client.ready()
    except DockerRunnerError as error:
        ready, failure = error.code, error
    if args.json:
        emit_json({"url": client.base_url, "health": health, "ready": ready})
    else:
        print(f"health  {health}\nready   {ready}")
    if failure is None:
        return 0
    print(runner_error_line(failure), file=sys.stderr)
    return exit_code_for(failure)


def _ttl_left(container: ManagedContainer) -> str:
    if container.ttl_seconds is None:
        return "-"
    return "unknown" if container.ttl_left_seconds is None else duration(container.ttl_left_seconds)


def ps_rows(containers: list[ManagedContainer], now: float, full_ids: bool = False) -> list[list[str]]:
    """The rows of ``ps`` (pure)."""
    return [
        [
            short_id(item.container_id, full_ids),
            item.name,
            item.image,
            item.status,
            ago(item.created_at, now),
            _ttl_left(item),
        ]
        for item in containers
    ]


def _ps(client: HttpDockerRunnerClient, args: argparse.Namespace) -> int:
    listed = client.list_containers(all_containers=args.all, labels=values.key_values(args.label, "--label"))
    if args.json:
        emit_json(listed)
    elif args.quiet:
        for item in listed:
            print(short_id(item.container_id, args.no_trunc))
    else:
        emit_table(PS_HEADERS, ps_rows(listed, time.time(), args.no_trunc))
    return 0


def start_opts(args: argparse.Namespace) -> ContainerOpts:
    """The container a ``start`` command line asks for (pure)."""
    cmd = list(args.command[1:] if args.command[:1] == ["--"] else args.command)
    return ContainerOpts(
        image=args.image,
        name=args.name,
        cmd=cmd or None,
        env=values.key_values(args.env, "--env") or None,
        working_dir=args.workdir,
        labels=values.key_values(args.label, "--label") or None,
        ttl_seconds=args.ttl,
        auto_remove=False if args.keep else None,
        fast_exec=args.fast_exec,
    )


def _start(client: HttpDockerRunnerClient, args: argparse.Namespace) -> int:
    started = client.start_container(start_opts(args))
    if args.json:
        emit_json(started)
    else:
        print(started.container_id)
    return 0


def _stop(client: HttpDockerRunnerClient, args: argparse.Namespace) -> int:
    for container in args.containers:
        client.stop_container(container, args.time)
        if not args.json:
            print(container)
    if args.json:
        emit_json({"stopped": args.containers})
    return 0


def _rm(client: HttpDockerRunnerClient, args: argparse.Namespace) -> int:
    first_failure = 0
    removed = []
    for container in args.containers:
        try:
            client.remove_container(container, force=args.force, remove_volumes=args.volumes)
        except DockerRunnerError as error:
            print(runner_error_line(error), file=sys.stderr)
            first_failure = first_failure or exit_code_for(error)
            continue
        removed.append(container)
        if not args.json:
            print(container)
    if args.json:
        emit_json({"removed": removed})
    return first_failure
