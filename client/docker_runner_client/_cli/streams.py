"""``logs`` and ``events``: a container's output and the engine's events, as they come."""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime

from .._client import HttpDockerRunnerClient
from .._models import DockerEvent
from . import args as values
from .commands import Commands, add_command
from .output import emit_json, short_id

ACTION_WIDTH = 40
TIME_HELP = "Unix seconds, or a duration before now: 30s, 10m, 2h, 1d"


def register(commands: Commands) -> None:
    logs = add_command(
        commands,
        "logs",
        _logs,
        "print a container's output",
        "Print what CONTAINER wrote: its stdout to stdout, its stderr to stderr. With -f, go on "
        "until the container ends. --json: one object per chunk, {stream, data}.",
    )
    logs.add_argument("-f", "--follow", action="store_true", help="follow the output until the container ends")
    logs.add_argument("--tail", metavar="N", help="only the last N lines (default: all)")
    logs.add_argument("--since", metavar="WHEN", help="only output since then: " + TIME_HELP)
    logs.add_argument("-t", "--timestamps", action="store_true", help="prefix each line with its time")
    logs.add_argument("container", metavar="CONTAINER")
    events = add_command(
        commands,
        "events",
        _events,
        "print the engine's events as they happen",
        "Print engine events, one line each (time, type, action, id, name), until interrupted or "
        "--until; a dropped connection is resumed where it stopped. Container events only unless "
        "a type filter says otherwise. --json: the engine's event, one object per line.",
    )
    events.add_argument(
        "--filter",
        action="append",
        metavar="KEY=VALUE",
        help="the engine's filters: type=image, event=die, label=a=b, container=ID",
    )
    events.add_argument("--since", metavar="WHEN", help="replay from then: " + TIME_HELP)
    events.add_argument("--until", metavar="WHEN", help="stop at then: " + TIME_HELP)


def _logs(client: HttpDockerRunnerClient, args: argparse.Namespace) -> int:
    since = values.timestamp(args.since, time.time())
    chunks = client.logs(args.container, follow=args.follow, since=since, tail=args.tail, timestamps=args.timestamps)
    for chunk in chunks:
        if args.json:
            emit_json(chunk, line=True)
            continue
        stream = sys.stderr if chunk.stream == "stderr" else sys.stdout
        stream.buffer.write(chunk.data)
        stream.buffer.flush()
    return 0


def event_line(event: DockerEvent) -> str:
    """One event for people: local time, type, action, short id, name (pure but for the time zone)."""
    when = datetime.fromtimestamp(event.time_nano / 1e9).isoformat(timespec="milliseconds") if event.time_nano else "-"
    name = event.attributes.get("name", "")
    action = " ".join(event.action.split())  # an exec's action carries its command line
    if len(action) > ACTION_WIDTH:
        action = action[: ACTION_WIDTH - 3] + "..."
    return f"{when}  {event.type:<9}  {action:<14}  {short_id(event.actor_id):<12}  {name}".rstrip()


def _events(client: HttpDockerRunnerClient, args: argparse.Namespace) -> int:
    now = time.time()
    since, until = values.timestamp(args.since, now), values.timestamp(args.until, now)
    stream = client.events(since=since, until=until, filters=values.filters(args.filter), reconnect=until is None)
    for event in stream:
        if args.json:
            emit_json(event.raw, line=True)
        else:
            print(event_line(event), flush=True)
    return 0
