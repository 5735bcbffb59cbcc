"""How a command module plugs into the parser: its handler's type, and the options every command
takes (``--url``, ``--json``), so that they may follow the command name."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TypeAlias

from .._client import HttpDockerRunnerClient

Handler: TypeAlias = Callable[[HttpDockerRunnerClient, argparse.Namespace], int]
Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"

URL_HELP = "the runner (default: DOCKER_RUNNER_URL, else http://127.0.0.1:7071)"
JSON_HELP = "print JSON for scripts: one document, or one object per line for streams"


def add_common(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """``--url`` and ``--json``, on the top parser (with defaults) and on every command (without,
    so that a command's parser never overwrites what was given before the command name)."""
    default_url: object = None if top else argparse.SUPPRESS
    default_json: object = False if top else argparse.SUPPRESS
    parser.add_argument("--url", default=default_url, help=URL_HELP)
    parser.add_argument("--json", action="store_true", default=default_json, help=JSON_HELP)


def add_command(
    commands: Commands, name: str, handler: Handler, summary: str, description: str, *, raw: bool = False
) -> argparse.ArgumentParser:
    """A command's parser, with the common options; ``raw`` keeps the description's own lines."""
    formatter = argparse.RawDescriptionHelpFormatter if raw else argparse.HelpFormatter
    parser = commands.add_parser(name, help=summary, description=description, formatter_class=formatter)
    add_common(parser, top=False)
    parser.set_defaults(handler=handler)
    return parser
