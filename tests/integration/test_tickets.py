"""Browser tickets (docs/protocol.md 1.1): single use, one path and query, short-lived, over WS and SSE."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from docker_runner.auth.tickets import TicketBook, split_ticket
from docker_runner_client import HttpDockerRunnerClient, StartedContainer, ValidationFailed
from tests.support.server import TEST_SECRET, RunningServer, make_settings, running_runner
from tests.support.waiting import wait_for

pytestmark = pytest.mark.docker


def _ws_path(container_id: str) -> str:
    return f"/v1/exec/interactive/ws?containerId={container_id}&command=echo%20ticketed"


def _refusal(url: str) -> tuple[int, str]:
    with pytest.raises(InvalidStatus) as refused:
        connect(url, legacy=True)
    return refused.value.response.status_code, json.loads(refused.value.response.body or b"")["error"]["code"]


def test_ticket_opens_the_websocket_once(client: HttpDockerRunnerClient, container: StartedContainer) -> None:
    """A browser (no signed headers) opens the exec with a ticket; the same URL a second time is refused."""
    ticket = client.ticket(_ws_path(container.container_id))
    url = ticket.url(client.base_url)
    assert url.startswith("ws://") and url.endswith("ticket=" + ticket.ticket)
    with connect(url) as browser:
        frames = [json.loads(browser.recv(timeout=10)) for _ in range(3)]
    assert [f["type"] for f in frames] == ["ready", "stdout", "exit"]
    assert _refusal(url) == (401, "invalid_ticket")


def test_ticket_is_bound_to_its_path_and_query(client: HttpDockerRunnerClient, container: StartedContainer) -> None:
    """A ticket opens only the path and query it was issued for."""
    ticket = client.ticket(_ws_path(container.container_id))
    other = ticket.url(client.base_url).replace("echo%20ticketed", "cat%20/etc/passwd")
    assert _refusal(other) == (401, "invalid_ticket")


def test_expired_ticket_is_refused(client: HttpDockerRunnerClient, container: StartedContainer) -> None:
    """A ticket past its expiry is refused with 401 invalid_ticket."""
    ticket = client.ticket(_ws_path(container.container_id), ttl_ms=1)
    wait_for(lambda: time.time() * 1000 > ticket.expires_at, what="expiry")
    assert _refusal(ticket.url(client.base_url)) == (401, "invalid_ticket")


def test_ticket_opens_an_event_stream(runner: RunningServer, client: HttpDockerRunnerClient) -> None:
    """EventSource cannot set headers either: SSE routes take tickets the same way."""
    since = str(int(time.time()) - 5)
    path = f"/v1/events/sse?since={since}&until={int(time.time()) + 1}"
    ticket = client.ticket(path)
    response = httpx.get(ticket.url(runner.url), timeout=10)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
    again = httpx.get(ticket.url(runner.url), timeout=10)
    assert (again.status_code, again.json()["error"]["code"]) == (401, "invalid_ticket")


def test_ticket_requests_are_validated(client: HttpDockerRunnerClient) -> None:
    """ttlMs above 60 s and paths not starting with / are 400 naming the field."""
    with pytest.raises(ValidationFailed) as too_long:
        client.ticket("/v1/events/sse", ttl_ms=60_001)
    assert "ttlMs" in too_long.value.message
    with pytest.raises(ValidationFailed):
        client.ticket("v1/events/sse")


@pytest.mark.parametrize("path", ["/v1/exec/run", "/v1/jobs", "/v1/containers/inspect?containerId=x", "/nowhere"])
def test_tickets_are_only_for_routes_that_take_them(client: HttpDockerRunnerClient, path: str) -> None:
    """A ticket for a route that would refuse it is 400 naming path, not a ticket that cannot work."""
    with pytest.raises(ValidationFailed) as refused:
        client.ticket(path)
    assert refused.value.details.get("field") == "path"


@pytest.mark.parametrize(
    "path",
    [
        "/v1/events/sse",
        "/v1/containers/logs/sse?containerId=x",
        "/v1/exec/interactive/ws?containerId=x",
        "/v1/jobs/j1/events",
    ],
)
def test_tickets_for_every_route_that_takes_them(client: HttpDockerRunnerClient, path: str) -> None:
    """The SSE streams (jobs' included) and the exec WebSocket get tickets, their queries kept."""
    assert client.ticket(path).path == path


def test_tickets_survive_a_rotation(container: StartedContainer) -> None:
    """A ticket issued before the next secret arrived is still good during the rotation."""
    old, new = "old-ticket-secret-0123456789-abcdefghijkl", "new-ticket-secret-0123456789-abcdefghijkl"
    issued_before = TicketBook(lambda: (old,)).issue(_ws_path(container.container_id))[0]
    with running_runner(make_settings(shared_secret=old, shared_secret_next=new)) as server:
        url = server.url.replace("http", "ws") + _ws_path(container.container_id) + "&ticket=" + issued_before
        with connect(url) as browser:
            assert json.loads(browser.recv(timeout=10))["type"] == "ready"


def test_a_refused_origin_does_not_use_the_ticket_up(container: StartedContainer) -> None:
    """An upgrade refused for its Origin leaves the ticket unused: the right page can still open it."""
    with running_runner(make_settings(allowed_origins=("https://platform.example",))) as server:
        with HttpDockerRunnerClient(server.url, TEST_SECRET) as client:
            url = client.ticket(_ws_path(container.container_id)).url(server.url)
        with pytest.raises(InvalidStatus) as refused:
            connect(url, additional_headers={"Origin": "https://evil.example"}, legacy=True)
        assert refused.value.response.status_code == 403
        with connect(url, additional_headers={"Origin": "https://platform.example"}) as browser:
            assert json.loads(browser.recv(timeout=10))["type"] == "ready"


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/p?a=1&ticket=T", ("/p?a=1", "T")),
        ("/p?ticket=T", ("/p", "T")),
        ("/p?ticket=T&a=1", None),
        ("/p?a=1", None),
        ("/p?a=1&ticket=", None),
    ],
)
def test_ticket_must_be_the_last_parameter(target: str, expected: tuple[str, str] | None) -> None:
    """Only a ticket in the last query parameter counts."""
    assert split_ticket(target) == expected
