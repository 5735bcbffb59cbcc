"""GET /v1/containers [ext]: the managed containers in scope, with the TTL left of each."""

from __future__ import annotations

import uuid

import pytest

from docker_runner_client import HttpDockerRunnerClient
from tests.conftest import sleeper_opts
from tests.support.docker_env import SESSION_LABELS, TEST_IMAGE
from tests.support.server import RunningServer
from tests.support.signed import error_of, signed_request

pytestmark = pytest.mark.docker


def test_listed_with_ttl_left_and_filtered_by_labels(client: HttpDockerRunnerClient) -> None:
    """A container with a TTL shows it and the seconds left; one without, nulls; stopped ones only with all."""
    case = {**SESSION_LABELS, "case": "list-" + uuid.uuid4().hex[:8]}
    with_ttl = client.start_container(sleeper_opts(labels=case, ttl_seconds=600))
    without = client.start_container(sleeper_opts(labels=case, auto_remove=False))
    try:
        listed = {item.container_id: item for item in client.list_containers(labels=case)}
        assert set(listed) == {with_ttl.container_id, without.container_id}
        timed = listed[with_ttl.container_id]
        assert (timed.name, timed.image, timed.status) == (with_ttl.name, TEST_IMAGE, "running")
        assert timed.ttl_seconds == 600 and timed.ttl_left_seconds is not None
        assert 500 < timed.ttl_left_seconds <= 600
        assert timed.labels["case"] == case["case"] and timed.created_at > 1_600_000_000_000
        assert (listed[without.container_id].ttl_seconds, listed[without.container_id].ttl_left_seconds) == (
            None,
            None,
        )
        client.stop_container(without.container_id, timeout_sec=0)
        assert [item.container_id for item in client.list_containers(labels=case)] == [with_ttl.container_id]
        stopped = {item.container_id: item.status for item in client.list_containers(labels=case, all_containers=True)}
        assert stopped[without.container_id] == "exited"
    finally:
        for started in (with_ttl, without):
            client.remove_container(started.container_id, force=True)


def test_only_the_runners_own_containers(runner: RunningServer, client: HttpDockerRunnerClient) -> None:
    """Every listed container is managed; a labels query that is not a JSON object is 400 naming it."""
    assert all(item.labels.get("dev.docker-runner.managed") == "true" for item in client.list_containers())
    response = signed_request(runner.url, "GET", "/v1/containers?labels=%5B1%5D")
    assert response.status_code == 400
    assert "labels" in error_of(response)["message"]
