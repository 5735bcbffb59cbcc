"""The browser terminal's pure pieces: its settings, the link the client builds, the ticket check
that explains a refusal without using the ticket, and the same-origin rule of the runner's page."""

from __future__ import annotations

import asyncio
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from docker_runner.auth.tickets import TicketBook
from docker_runner.errors import ApiError
from docker_runner.http.routes.interactive import origin_allowed
from docker_runner.settings import Settings, SettingsError
from docker_runner_client import Ticket
from docker_runner_client._routes import terminal_page_url, terminal_target

SECRET = "s" * 32


def test_ui_is_off_by_default_and_read_from_the_environment() -> None:
    default = Settings.from_env({"DOCKER_RUNNER_SHARED_SECRET": SECRET})
    assert (default.ui, default.ui_dir) == (False, None)
    on = Settings.from_env(
        {"DOCKER_RUNNER_SHARED_SECRET": SECRET, "DOCKER_RUNNER_UI": "true", "DOCKER_RUNNER_UI_DIR": "/srv/ui"}
    )
    assert (on.ui, on.ui_dir) == (True, Path("/srv/ui"))
    with pytest.raises(SettingsError, match="DOCKER_RUNNER_UI"):
        Settings.from_env({"DOCKER_RUNNER_SHARED_SECRET": SECRET, "DOCKER_RUNNER_UI": "perhaps"})


def test_terminal_target_is_a_tty_shell_unless_a_command_is_given() -> None:
    shell = parse_qs(urlsplit(terminal_target("box", None, None, None)).query)
    assert shell == {"containerId": ["box"], "command": ['["/bin/sh"]'], "tty": ["true"], "demux": ["false"]}
    command = parse_qs(urlsplit(terminal_target("box", "top -d 1", "/tmp", None)).query)
    assert (command["command"], command["workdir"]) == (["top -d 1"], ["/tmp"])


def test_the_link_keeps_the_ticketed_socket_url_in_its_fragment() -> None:
    ticket = Ticket(ticket="abc.def", expires_at=0, path="/v1/exec/interactive/ws?containerId=box&tty=true")
    url = terminal_page_url("https://runner.example/", ticket)
    assert url == (
        "https://runner.example/ui/terminal"
        "#wss://runner.example/v1/exec/interactive/ws?containerId=box&tty=true&ticket=abc.def"
    )


def test_checking_a_ticket_does_not_use_it() -> None:
    """check() says what redeem() would, without spending the ticket; redeem() spends it once."""

    async def scenario() -> None:
        book = TicketBook(lambda: (SECRET,))
        target = "/v1/exec/interactive/ws?containerId=box"
        ticket, _ = book.issue(target)
        await book.check(f"{target}&ticket={ticket}")
        await book.check(f"{target}&ticket={ticket}")
        await book.redeem(f"{target}&ticket={ticket}")
        with pytest.raises(ApiError, match="already used"):
            await book.check(f"{target}&ticket={ticket}")
        with pytest.raises(ApiError, match="already used"):
            await book.redeem(f"{target}&ticket={ticket}")

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("ui", "origin", "host", "allowed"),
    [
        (True, "http://127.0.0.1:7071", "127.0.0.1:7071", True),
        (True, "https://Runner.Example", "runner.example", True),
        (True, "http://127.0.0.1:7072", "127.0.0.1:7071", False),
        (True, "http://evil.example", "127.0.0.1:7071", False),
        (True, "null", "127.0.0.1:7071", False),
        (True, "http://127.0.0.1:7071", None, False),
        (False, "http://127.0.0.1:7071", "127.0.0.1:7071", False),
        (False, "https://platform.example/", "127.0.0.1:7071", True),
    ],
)
def test_origin_rule(ui: bool, origin: str, host: str | None, allowed: bool) -> None:
    """Listed origins always; the runner's own (the host the browser talks to) only with the UI on."""
    settings = Settings(shared_secret=SECRET, ui=ui, allowed_origins=("https://platform.example",))
    assert origin_allowed(settings, origin, host) is allowed
