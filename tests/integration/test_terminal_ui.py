"""The browser terminal's server side: /ui/terminal (off by default, open, static, 404 with a build
hint without a bundle), the same-origin rule for its page, why a refused upgrade was refused, and
the ``docker-runner-client terminal`` command."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from docker_runner_client import HttpDockerRunnerClient, StartedContainer
from docker_runner_client._routes import terminal_target
from tests.conftest import sleeper_opts
from tests.support.server import TEST_SECRET, RunningServer, make_settings, running_runner

CLI = [sys.executable, "-m", "docker_runner_client"]


def _bundle(directory: Path) -> Path:
    """A stand-in for client/web/dist: the route serves whatever files the build left there."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "index.html").write_text("<!doctype html><title>terminal</title>")
    (directory / "page.js").write_text("console.log('page')")
    (directory / "page.css").write_text("body {}")
    return directory


def test_the_ui_is_off_by_default() -> None:
    with running_runner() as server:
        answer = httpx.get(server.url + "/ui/terminal", timeout=10)
    assert (answer.status_code, answer.json()["error"]["code"]) == (404, "not_found")


def test_without_a_bundle_the_page_says_how_to_build_it(tmp_path: Path) -> None:
    with running_runner(make_settings(ui=True, ui_dir=tmp_path / "dist")) as server:
        for path in ("/ui/terminal", "/ui/terminal/page.js"):
            answer = httpx.get(server.url + path, timeout=10)
            error = answer.json()["error"]
            assert (answer.status_code, error["code"]) == (404, "ui_not_built")
            assert "make web" in error["message"] and "DOCKER_RUNNER_UI_DIR" in error["message"]


def test_the_page_and_its_assets_are_served_without_signatures(tmp_path: Path) -> None:
    """Static files, no HMAC headers; the page may only talk to its own runner (CSP)."""
    with running_runner(make_settings(ui=True, ui_dir=_bundle(tmp_path / "dist"))) as server:
        page = httpx.get(server.url + "/ui/terminal", timeout=10)
        script = httpx.get(server.url + "/ui/terminal/page.js", timeout=10)
        style = httpx.get(server.url + "/ui/terminal/page.css", timeout=10)
        missing = httpx.get(server.url + "/ui/terminal/nothing.js", timeout=10)
        hidden = httpx.get(server.url + "/ui/terminal/.env", timeout=10)
        escaping = httpx.get(server.url + "/ui/terminal/..%2F..%2Fetc%2Fpasswd", timeout=10)
    assert (page.status_code, page.headers["content-type"]) == (200, "text/html; charset=utf-8")
    assert page.text == "<!doctype html><title>terminal</title>"
    policy = page.headers["content-security-policy"]
    assert "connect-src 'self'" in policy and "script-src 'self'" in policy
    assert page.headers["referrer-policy"] == "no-referrer"
    assert (script.status_code, script.headers["content-type"]) == (200, "text/javascript; charset=utf-8")
    assert (style.status_code, style.headers["content-type"]) == (200, "text/css; charset=utf-8")
    assert [answer.status_code for answer in (missing, hidden, escaping)] == [404, 404, 404]


@pytest.mark.docker
def test_the_runners_own_page_may_open_the_socket(tmp_path: Path) -> None:
    """With the UI on, an Origin naming the runner itself is accepted; another is refused (403)."""
    with (
        running_runner(make_settings(ui=True, ui_dir=_bundle(tmp_path / "dist"))) as server,
        HttpDockerRunnerClient(server.url, TEST_SECRET) as client,
    ):
        box = client.start_container(sleeper_opts())
        try:
            own = client.ticket(terminal_target(box.container_id, "echo same-origin", None, None))
            with connect(own.url(server.url), origin=server.url) as browser:  # type: ignore[arg-type]
                assert json.loads(browser.recv(timeout=10))["type"] == "ready"
            foreign = client.ticket(terminal_target(box.container_id, "echo foreign", None, None))
            with pytest.raises(InvalidStatus) as refused:
                connect(foreign.url(server.url), origin="http://evil.example")  # type: ignore[arg-type]
            assert refused.value.response.status_code == 403
        finally:
            client.remove_container(box.container_id, force=True)


@pytest.mark.docker
def test_a_plain_get_says_why_an_upgrade_would_be_refused(
    runner: RunningServer, client: HttpDockerRunnerClient, container: StartedContainer
) -> None:
    """Browsers hide a refused upgrade's status: the same URL without the upgrade tells, readable
    from any origin, and does not use the ticket."""
    ticket = client.ticket(terminal_target(container.container_id, "echo diagnosed", None, None))
    http_url = ticket.url(runner.url).replace("ws://", "http://", 1)

    unused = httpx.get(http_url, timeout=10)
    assert (unused.status_code, unused.json()["error"]["code"]) == (426, "upgrade_required")
    assert unused.headers["access-control-allow-origin"] == "*"
    foreign = httpx.get(http_url, headers={"origin": "http://evil.example"}, timeout=10)
    assert (foreign.status_code, foreign.json()["error"]["code"]) == (403, "origin_not_allowed")
    assert foreign.headers["access-control-allow-origin"] == "*"

    with connect(ticket.url(runner.url)) as browser:  # the diagnosis left the ticket usable
        assert json.loads(browser.recv(timeout=10))["type"] == "ready"
    used = httpx.get(http_url, timeout=10)
    refusal = used.json()["error"]
    assert (used.status_code, refusal["code"]) == (401, "invalid_ticket")
    assert refusal["message"] == "Invalid ticket: already used"
    assert used.headers["access-control-allow-origin"] == "*"
    plain = httpx.get(runner.url + "/v1/exec/interactive/ws", timeout=10)
    assert (plain.status_code, plain.json()["error"]["code"]) == (426, "upgrade_required")


def _cli(*args: str, url: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {key: value for key, value in os.environ.items() if not key.startswith("DOCKER_RUNNER_")}
    environment.update({"DOCKER_RUNNER_URL": url, "DOCKER_RUNNER_SHARED_SECRET": TEST_SECRET, **env})
    return subprocess.run([*CLI, *args], env=environment, capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.docker
def test_cli_prints_a_link_whose_fragment_opens_a_shell(tmp_path: Path) -> None:
    """`docker-runner-client terminal CONTAINER` prints the page URL; its fragment is a ticketed
    WebSocket URL on which a tty /bin/sh (or --command) runs, once."""
    with (
        running_runner(make_settings(ui=True, ui_dir=_bundle(tmp_path / "dist"))) as server,
        HttpDockerRunnerClient(server.url, TEST_SECRET) as client,
    ):
        box = client.start_container(sleeper_opts())
        try:
            done = _cli("terminal", box.container_id, url=server.url)
            assert done.returncode == 0, done.stderr
            page_url, ws_url = done.stdout.strip().split("#", 1)
            assert page_url == server.url + "/ui/terminal"
            assert "one session" in done.stderr
            assert urlsplit(ws_url).path == "/v1/exec/interactive/ws" and "tty=true" in ws_url
            with connect(ws_url) as browser:
                assert json.loads(browser.recv(timeout=10))["type"] == "ready"
                browser.send(json.dumps({"type": "stdin", "data": _b64(b"tty; exit 5\n")}))
                frames = _frames_until_exit(browser)
            assert b"/dev/pts/" in b"".join(_unb64(frame["data"]) for frame in frames if frame["type"] == "stdout")
            assert frames[-1]["exitCode"] == 5
            with pytest.raises(InvalidStatus):
                connect(ws_url)

            done = _cli("terminal", box.container_id, "--command", "echo from-cli; exit 4", url=server.url)
            with connect(done.stdout.strip().split("#", 1)[1]) as browser:
                frames = _frames_until_exit(browser)
            assert b"from-cli" in b"".join(_unb64(f["data"]) for f in frames if f["type"] == "stdout")
            assert frames[-1]["exitCode"] == 4
        finally:
            client.remove_container(box.container_id, force=True)


def test_cli_open_hands_the_link_to_the_browser(tmp_path: Path) -> None:
    opened = tmp_path / "opened"
    fake_browser = tmp_path / "browser.sh"
    fake_browser.write_text(f'#!/bin/sh\nprintf %s "$1" > {opened}\n')
    fake_browser.chmod(0o755)
    with running_runner(make_settings(ui=True, ui_dir=_bundle(tmp_path / "dist"))) as server:
        done = _cli("terminal", "some-container", "--open", url=server.url, BROWSER=str(fake_browser))
    assert done.returncode == 0, done.stderr
    assert opened.read_text() == done.stdout.strip()


def test_cli_refuses_when_the_runner_serves_no_terminal(tmp_path: Path) -> None:
    """No ticket is minted for a page that is not there: the command says what to change."""
    with running_runner() as server:
        off = _cli("terminal", "some-container", url=server.url)
    with running_runner(make_settings(ui=True, ui_dir=tmp_path / "empty")) as server:
        unbuilt = _cli("terminal", "some-container", url=server.url)
    assert (off.returncode, off.stdout) == (1, "")
    assert "DOCKER_RUNNER_UI=true" in off.stderr
    assert (unbuilt.returncode, unbuilt.stdout) == (1, "")
    assert "make web" in unbuilt.stderr
    no_secret = _cli("terminal", "x", url=server.url, DOCKER_RUNNER_SHARED_SECRET="")
    assert no_secret.returncode == 2 and "DOCKER_RUNNER_SHARED_SECRET" in no_secret.stderr


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: object) -> bytes:
    return base64.b64decode(str(text))


def _frames_until_exit(browser: object) -> list[dict[str, object]]:
    frames: list[dict[str, object]] = []
    while not frames or frames[-1]["type"] != "exit":
        frames.append(json.loads(browser.recv(timeout=10)))  # type: ignore[attr-defined]
    return frames
