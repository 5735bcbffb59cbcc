"""``terminal``: a link to the runner's browser terminal on a tty exec in a container.

The link carries a single-use ticket in its fragment: it opens one session, and only within its
TTL. The runner must serve the page (DOCKER_RUNNER_UI=true).
"""

from __future__ import annotations

import argparse
import sys
import webbrowser

import httpx

from .._client import HttpDockerRunnerClient
from .._routes import TERMINAL_PAGE
from .commands import Commands, add_command
from .exits import PROG
from .output import emit_json

CLI_TTL_MS = 60_000  # a person copies the link: the longest a ticket may live


def register(commands: Commands) -> None:
    terminal = add_command(
        commands,
        "terminal",
        _terminal,
        "print a link to a browser terminal in a container",
        "Mint a single-use ticket for a tty exec in CONTAINER and print the link to the "
        "runner's terminal page (the runner needs DOCKER_RUNNER_UI=true).",
    )
    terminal.add_argument("container", metavar="CONTAINER", help="the container's id or name")
    terminal.add_argument("--command", help="a command line, run with /bin/sh -lc (default: an interactive /bin/sh)")
    terminal.add_argument("--workdir", help="the exec's working directory")
    terminal.add_argument(
        "--ttl-ms", type=int, default=CLI_TTL_MS, help=f"how long the link may wait to be opened (default {CLI_TTL_MS})"
    )
    terminal.add_argument("--open", action="store_true", help="open the link in the default browser")


def _page_problem(client: HttpDockerRunnerClient) -> str | None:
    """Why the runner does not serve the terminal page, or None when it does."""
    try:
        answer = httpx.get(client.base_url + TERMINAL_PAGE, timeout=10)
    except httpx.HTTPError as exc:
        return f"cannot reach {client.base_url}: {exc}"
    if answer.status_code == 200:
        return None
    try:
        error = answer.json()["error"]
        code, message = error["code"], error["message"]
    except (ValueError, KeyError, TypeError):
        return f"{client.base_url}{TERMINAL_PAGE} answered {answer.status_code}"
    if code == "ui_not_built":
        return str(message)
    return (
        f"{client.base_url}{TERMINAL_PAGE} answered {answer.status_code} {code}: "
        "start the runner with DOCKER_RUNNER_UI=true to serve the browser terminal"
    )


def _terminal(client: HttpDockerRunnerClient, args: argparse.Namespace) -> int:
    problem = _page_problem(client)
    if problem is not None:
        print(f"{PROG}: {problem}", file=sys.stderr)
        return 1
    url = client.terminal_url(args.container, args.command, workdir=args.workdir, ttl_ms=args.ttl_ms)
    if args.json:
        emit_json({"url": url})
    else:
        print(url)
    print(f"{PROG}: the link opens one session, within {args.ttl_ms / 1000:g} s", file=sys.stderr)
    if args.open and not webbrowser.open(url):
        print(f"{PROG}: no browser could be started; open the link by hand", file=sys.stderr)
    return 0
