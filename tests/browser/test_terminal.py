"""The browser terminal in real Chromium: the runner's page (/ui/terminal) and the component embedded
in another origin's page, against a live runner and a real container. What the terminal shows is
read from xterm's buffer."""

from __future__ import annotations

import time
from pathlib import Path

import docker
import pytest
from playwright.sync_api import Browser, Page

from docker_runner_client import HttpDockerRunnerClient, StartedContainer
from docker_runner_client._routes import terminal_page_url, terminal_target
from tests.support.browser import ARTIFACTS, TerminalPage, embedding_site
from tests.support.docker_env import SESSION_ID
from tests.support.ps import processes
from tests.support.server import TEST_SECRET, RunningServer, make_settings, running_runner
from tests.support.waiting import wait_for

pytestmark = pytest.mark.docker


def _shell_target(box: StartedContainer) -> str:
    return terminal_target(box.container_id, None, None, None)


def _open(page: Page, url: str) -> TerminalPage:
    page.goto(url)
    terminal = TerminalPage(page)
    terminal.wait_state("open")
    terminal.wait_prompt()
    return terminal


def _shell(page: Page, client: HttpDockerRunnerClient, box: StartedContainer) -> TerminalPage:
    return _open(page, client.terminal_url(box.container_id))


def test_echo_hello_and_a_screenshot(page: Page, ui_client: HttpDockerRunnerClient, box: StartedContainer) -> None:
    """Typed keys reach the shell and its output shows; the session is saved as a screenshot (the
    README's docs/terminal.png is a copy of it)."""
    page.set_viewport_size({"width": 820, "height": 330})
    terminal = _shell(page, ui_client, box)
    terminal.run("echo hello")
    terminal.wait_line("hello")
    assert terminal.events()[0]["type"] == "ready"
    terminal.run("printf 'é✓\\n'")
    terminal.wait_line("é✓")
    rows, cols = terminal.size()
    terminal.run("stty size")
    terminal.wait_line(f"{rows} {cols}")
    terminal.run("ls /")
    terminal.wait_prompt()
    terminal.run("exit 3")
    terminal.wait_text("[process exited with code 3]")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "terminal-session.png"
    page.screenshot(path=str(shot))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_non_ascii_round_trips(page: Page, ui_client: HttpDockerRunnerClient, box: StartedContainer) -> None:
    """UTF-8 typed in goes out as UTF-8; a character whose bytes arrive in two frames renders whole."""
    terminal = _shell(page, ui_client, box)
    terminal.run("printf 'é✓\\n'")
    terminal.wait_line("é✓")
    # é is \303\251: the two bytes leave the shell 0.3 s apart, so in two stdout frames
    terminal.run("printf '[\\303'; sleep 0.3; printf '\\251]\\n'")
    terminal.wait_line("[é]")


def test_viewport_resize_reaches_stty(page: Page, ui_client: HttpDockerRunnerClient, box: StartedContainer) -> None:
    """The fit addon follows the window, and the exec's tty follows the terminal (resize frames)."""
    terminal = _shell(page, ui_client, box)
    before = terminal.size()
    terminal.run("stty size")
    terminal.wait_line(f"{before[0]} {before[1]}")
    page.set_viewport_size({"width": 640, "height": 360})
    after = wait_for(lambda: terminal.size() != before and terminal.size(), what="the terminal to refit")
    assert after[0] < before[0] and after[1] < before[1]
    terminal.run("stty size")
    terminal.wait_line(f"{after[0]} {after[1]}")


def test_ctrl_c_interrupts_and_the_prompt_returns(
    page: Page, ui_client: HttpDockerRunnerClient, box: StartedContainer, docker_api: docker.APIClient
) -> None:
    terminal = _shell(page, ui_client, box)
    terminal.run("sleep 100")
    wait_for(lambda: "sleep 100" in processes(docker_api, box.container_id), what="sleep 100 to run")
    page.keyboard.press("Control+C")
    wait_for(lambda: "sleep 100" not in processes(docker_api, box.container_id), what="sleep 100 to end")
    terminal.run("echo back-$((40 + 2))")
    terminal.wait_line("back-42")


def test_exit_shows_the_exit_code(page: Page, ui_client: HttpDockerRunnerClient, box: StartedContainer) -> None:
    terminal = _shell(page, ui_client, box)
    terminal.run("exit 3")
    terminal.wait_state("exited")
    terminal.wait_text("[process exited with code 3]")
    exits = [event["detail"] for event in terminal.events() if event["type"] == "exit"]
    assert [exit_event["exitCode"] for exit_event in exits] == [3]
    assert "exited 3" in page.title()


def test_closing_the_tab_kills_the_shell_and_its_children(
    browser: Browser, ui_client: HttpDockerRunnerClient, box: StartedContainer, docker_api: docker.APIClient
) -> None:
    """Checked from a second exec, behind the runner's back: nothing the session started survives."""
    context = browser.new_context()
    try:
        page = context.new_page()
        terminal = _shell(page, ui_client, box)
        terminal.run("sleep 4242 & sleep 4343")
        wait_for(
            lambda: all(name in processes(docker_api, box.container_id) for name in ("sleep 4242", "sleep 4343")),
            what="the shell's children to run",
        )
        page.close()
    finally:
        context.close()

    def nothing_left() -> bool:
        listing = processes(docker_api, box.container_id)
        return not any(name in listing for name in ("sleep 4242", "sleep 4343", "/bin/sh"))

    wait_for(nothing_left, timeout=15, what="the session's processes to be killed")


def test_the_same_link_twice_says_ticket_already_used(
    browser: Browser, ui_client: HttpDockerRunnerClient, box: StartedContainer
) -> None:
    """The second tab says why it got no shell, instead of staying blank; the first keeps working."""
    context = browser.new_context()
    try:
        url = ui_client.terminal_url(box.container_id)
        first = _open(context.new_page(), url)
        second = TerminalPage(context.new_page())
        second.page.goto(url)
        assert second.wait_state("failed") == "failed"
        second.wait_text("ticket already used")
        (error,) = [event["detail"] for event in second.events() if event["type"] == "error"]
        assert (error["kind"], error["code"]) == ("upgrade", "invalid_ticket")
        first.run("echo still-here")
        first.wait_line("still-here")
    finally:
        context.close()


def test_an_expired_link_says_ticket_expired(
    page: Page, ui_client: HttpDockerRunnerClient, box: StartedContainer
) -> None:
    """A link opened after its TTL says the ticket expired, not a blank page or a generic failure."""
    target = _shell_target(box)
    ticket = ui_client.ticket(target, ttl_ms=1000)
    wait_for(lambda: time.time() * 1000 > ticket.expires_at + 50, timeout=5, what="the ticket to expire")
    page.goto(terminal_page_url(ui_client.base_url, ticket))
    terminal = TerminalPage(page)
    assert terminal.wait_state("failed") == "failed"
    terminal.wait_text("ticket expired")
    (error,) = [event["detail"] for event in terminal.events() if event["type"] == "error"]
    assert (error["kind"], error["code"]) == ("upgrade", "invalid_ticket")


def test_a_page_of_another_origin_cannot_open_the_socket(
    page: Page, ui_client: HttpDockerRunnerClient, box: StartedContainer, tmp_path: Path
) -> None:
    """The component embedded in a page of another origin is refused (403 on the upgrade), and says so."""
    with embedding_site(tmp_path) as site:
        page.goto(site + "#" + ui_client.ticket(_shell_target(box)).url(ui_client.base_url))
        terminal = TerminalPage(page)
        terminal.wait_state("failed")
        terminal.wait_text("may not open exec sessions")
        assert [event["type"] for event in terminal.events()] == ["error"]
        assert terminal.events()[0]["detail"]["code"] == "origin_not_allowed"


def test_an_allowed_origin_embeds_the_component(
    page: Page, box: StartedContainer, tmp_path: Path, docker_api: docker.APIClient
) -> None:
    """A platform's origin in DOCKER_RUNNER_ALLOWED_ORIGINS embeds the terminal; dispose() ends the exec."""
    with embedding_site(tmp_path) as site:
        origin = site.rsplit("/", 1)[0]
        with (
            running_runner(make_settings(allowed_origins=(origin,))) as server,
            HttpDockerRunnerClient(server.url, TEST_SECRET) as client,
        ):
            page.goto(site + "#" + client.ticket(_shell_target(box)).url(client.base_url))
            terminal = TerminalPage(page)
            terminal.wait_state("open")
            terminal.run("echo embedded")
            terminal.wait_line("embedded")
            terminal.evaluate("window.runnerTerminal.dispose()")
            assert terminal.state() == "disposed"
            wait_for(lambda: "/bin/sh" not in processes(docker_api, box.container_id), what="the shell to be killed")


def test_a_lost_connection_is_said_and_not_retried(page: Page, box: StartedContainer) -> None:
    """The runner goes away mid-session: the terminal says the connection is lost, and stays closed."""
    with running_runner(make_settings(ui=True)) as server, HttpDockerRunnerClient(server.url, TEST_SECRET) as client:
        terminal = _open(page, client.terminal_url(box.container_id))
    terminal.wait_state("closed")
    terminal.wait_text("connection lost")
    assert [event["type"] for event in terminal.events()] == ["ready", "error"]


def test_an_error_frame_is_shown(page: Page, ui_client: HttpDockerRunnerClient) -> None:
    """The exec cannot start (no such container): the runner's error frame is written into the terminal."""
    page.goto(ui_client.terminal_url("no-such-container-" + SESSION_ID))
    terminal = TerminalPage(page)
    terminal.wait_state("closed")
    terminal.wait_text("(no_such_container)]")
    terminal.wait_text("[session ended (close code 1011)]")
    assert [event["detail"]["kind"] for event in terminal.events()] == ["frame"]


def test_the_page_without_a_link_explains_itself(page: Page, ui_runner: RunningServer) -> None:
    page.goto(ui_runner.url + "/ui/terminal")
    problem = page.locator(".runner-terminal-problem")
    assert "docker-runner-client terminal CONTAINER" in problem.inner_text()
