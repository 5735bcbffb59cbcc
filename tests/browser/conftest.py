"""Fixtures of the browser tests: Debian's Chromium under Playwright, a runner serving the terminal
page, and a fresh container per test."""

from __future__ import annotations

from collections.abc import Iterator

import docker
import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from docker_runner_client import HttpDockerRunnerClient, StartedContainer
from tests.conftest import sleeper_opts
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, require_browser
from tests.support.server import TEST_SECRET, RunningServer, make_settings, running_runner

VIEWPORT = {"width": 1000, "height": 600}


@pytest.fixture(autouse=True)
def _browser_needed() -> None:
    problem = require_browser()
    if problem is not None:
        pytest.skip(problem)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    problem = require_browser()
    if problem is not None:
        pytest.skip(problem)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport=VIEWPORT)  # type: ignore[arg-type]
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.fixture(scope="module")
def ui_runner(docker_api: docker.APIClient) -> Iterator[RunningServer]:
    """A runner with the browser terminal on (DOCKER_RUNNER_UI=true), serving the checkout's bundle."""
    with running_runner(make_settings(ui=True)) as server:
        yield server


@pytest.fixture
def ui_client(ui_runner: RunningServer) -> Iterator[HttpDockerRunnerClient]:
    with HttpDockerRunnerClient(ui_runner.url, TEST_SECRET) as client:
        yield client


@pytest.fixture
def box(ui_client: HttpDockerRunnerClient) -> Iterator[StartedContainer]:
    started = ui_client.start_container(sleeper_opts())
    try:
        yield started
    finally:
        ui_client.remove_container(started.container_id, force=True)
