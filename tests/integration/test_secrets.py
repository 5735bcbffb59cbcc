"""Secret rotation, and the secret never leaking into logs, errors, documents or containers."""

from __future__ import annotations

import logging

import httpx
import pytest

from docker_runner_client import HttpDockerRunnerClient, Unauthorized
from tests.conftest import sleeper_opts
from tests.support.server import make_settings, running_runner
from tests.support.signed import signed_request

pytestmark = pytest.mark.docker

OLD = "old-secret-0123456789-abcdefghijklmnopqrstuv"
NEW = "new-secret-0123456789-abcdefghijklmnopqrstuv"


def _accepts(url: str, secret: str) -> bool:
    with HttpDockerRunnerClient(url, secret, max_retries=0) as client:
        try:
            client.find_by_labels({"rotation": "probe"})
        except Unauthorized:
            return False
    return True


@pytest.mark.parametrize(
    ("current", "following", "old_ok", "new_ok"),
    [(OLD, None, True, False), (OLD, NEW, True, True), (NEW, None, False, True)],
    ids=["old", "both", "new"],
)
def test_rotation_without_downtime(current: str, following: str | None, old_ok: bool, new_ok: bool) -> None:
    """Before, during and after a rotation: the runner accepts exactly the configured secrets."""
    settings = make_settings(shared_secret=current, shared_secret_next=following)
    with running_runner(settings) as server:
        assert (_accepts(server.url, OLD), _accepts(server.url, NEW)) == (old_ok, new_ok)


def test_secret_never_leaks(caplog: pytest.LogCaptureFixture) -> None:
    """With debug logging on, a session of successes and failures leaves the secrets in no log line,
    error body, OpenAPI document, metrics page or container environment."""
    settings = make_settings(shared_secret=OLD, shared_secret_next=NEW, log_level="debug")
    answers: list[str] = []
    with caplog.at_level(logging.DEBUG), running_runner(settings) as server:
        with HttpDockerRunnerClient(server.url, OLD) as client:
            started = client.start_container(sleeper_opts())
            try:
                environment = client.exec_run(started.container_id, "env").stdout
                answers.append(environment)
                answers.append(str(client.inspect_container(started.container_id)["Config"]["Env"]))
            finally:
                client.remove_container(started.container_id, force=True)
        for secret in ("x" * 40, OLD[:-1]):
            answers.append(
                signed_request(server.url, "GET", "/v1/containers/inspect?containerId=x", secret=secret).text
            )
        answers.append(httpx.post(server.url + "/v1/containers/start", content=b"{").text)
        answers.append(httpx.get(server.url + "/openapi.json").text)
        answers.append(httpx.get(server.url + "/metrics").text)
    logged = "\n".join(record.getMessage() + str(record.args) + str(record.exc_info) for record in caplog.records)
    assert "DOCKER_RUNNER_EXEC_TOKEN" in answers[0]  # the environment was really read
    for secret in (OLD, NEW):
        assert secret not in logged
        assert all(secret not in answer for answer in answers)
