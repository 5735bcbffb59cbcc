"""Debian's Chromium driven by Playwright, and the terminal page as the tests see it.

The page's Content-Security-Policy forbids eval, so Playwright's ``wait_for_function`` (which
compiles its predicate in the page) cannot run there: conditions are polled with ``page.evaluate``
(which goes through the DevTools protocol, outside the policy) under a deadline instead.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from playwright.sync_api import Page

from docker_runner.http.routes.ui import CHECKOUT_BUNDLE
from tests.support.waiting import wait_for

CHROMIUM = Path("/usr/bin/chromium")
# As root Chromium needs --no-sandbox; the rest keep it off a closed network (no update, sync or
# component downloads, which this machine would refuse many times over).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
BUNDLE = CHECKOUT_BUNDLE
REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "build" / "browser"


def browser_problem() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing (Debian: apt-get install chromium)"
    if not (BUNDLE / "index.html").is_file():
        return f"the terminal bundle is not built ({BUNDLE}): run `make web`"
    return None


def require_browser() -> str | None:
    """The skip reason, or None; with RUNNER_REQUIRE_BROWSER=1 (CI) a missing piece fails instead."""
    problem = browser_problem()
    if problem is not None and os.environ.get("RUNNER_REQUIRE_BROWSER") == "1":
        raise AssertionError(f"RUNNER_REQUIRE_BROWSER=1 but {problem}")
    return problem


class TerminalPage:
    """A page holding a ``RunnerTerminal`` at ``window.runnerTerminal`` (the runner's page, or an embedding one)."""

    def __init__(self, page: Page) -> None:
        self.page = page

    def evaluate(self, expression: str) -> Any:
        return self.page.evaluate(expression)

    def state(self) -> str | None:
        value = self.evaluate("window.runnerTerminal ? window.runnerTerminal.state : null")
        return None if value is None else str(value)

    def wait_state(self, *states: str, timeout: float = 15) -> str:
        def reached() -> str | None:
            state = self.state()
            return state if state in states else None

        try:
            return wait_for(reached, timeout=timeout, what=f"the terminal's state to be one of {states}")
        except AssertionError as exc:
            raise AssertionError(f"{exc} (it is {self.state()}); the terminal shows:\n{self.text()}") from None

    def text(self) -> str:
        return str(self.evaluate("window.runnerTerminal ? window.runnerTerminal.text() : ''"))

    def lines(self) -> list[str]:
        return [line.rstrip() for line in self.text().split("\n")]

    def wait_text(self, needle: str, timeout: float = 15) -> str:
        def found() -> str | None:
            text = self.text()
            return text if needle in text else None

        try:
            return wait_for(found, timeout=timeout, what=repr(needle))
        except AssertionError as exc:
            raise AssertionError(f"{exc}; the terminal shows:\n{self.text()}") from None

    def wait_line(self, line: str, timeout: float = 15) -> None:
        """A line of exactly this text (output, not the echo of the command that printed it)."""
        try:
            wait_for(lambda: line in self.lines(), timeout=timeout, what=f"the line {line!r}")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; the terminal shows:\n{self.text()}") from None

    def wait_prompt(self, prompt: str = "/ #", timeout: float = 15) -> None:
        """The shell waits for input: its prompt is the last line."""
        try:
            wait_for(lambda: self.lines()[-1] == prompt, timeout=timeout, what=f"the prompt {prompt!r}")
        except AssertionError as exc:
            raise AssertionError(f"{exc}; the terminal shows:\n{self.text()}") from None

    def run(self, command: str) -> None:
        """Type a command line, as a person would, and press Enter."""
        self.page.keyboard.type(command)
        self.page.keyboard.press("Enter")

    def size(self) -> tuple[int, int]:
        rows, cols = self.evaluate("[window.runnerTerminal.terminal.rows, window.runnerTerminal.terminal.cols]")
        return int(rows), int(cols)

    def events(self) -> list[dict[str, Any]]:
        return list(self.evaluate("window.runnerTerminalEvents || []"))


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


EMBEDDING_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>a platform page</title>
<link rel="icon" href="data:,"><link rel="stylesheet" href="/terminal.css">
<style>html, body { height: 100%; margin: 0 } #box { position: fixed; inset: 0 }</style></head>
<body><div id="box" class="runner-terminal"></div>
<script type="module">
import { RunnerTerminal } from "/terminal.js";
window.runnerTerminalEvents = [];
const term = new RunnerTerminal(document.getElementById("box"), { url: location.hash.slice(1) });
for (const type of ["ready", "exit", "error"]) {
  term.on(type, (detail) => window.runnerTerminalEvents.push({ type, detail }));
}
window.runnerTerminal = term;
term.focus();
</script></body></html>
"""


@contextmanager
def embedding_site(directory: Path) -> Iterator[str]:
    """A page of another origin (a platform's) that embeds the component from the built bundle;
    yields its URL, to which the ticketed WebSocket URL is appended as the fragment."""
    for name in ("terminal.js", "terminal.css"):
        (directory / name).write_bytes((BUNDLE / name).read_bytes())
    (directory / "embed.html").write_text(EMBEDDING_PAGE, encoding="utf-8")
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_QuietHandler, directory=str(directory)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/embed.html"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
