"""Container logs over SSE (docs/protocol.md 4): demultiplexed chunks, follow and not, then end."""

from __future__ import annotations

import time

import pytest

from docker_runner_client import HttpDockerRunnerClient, NotFound, StartedContainer, ValidationFailed
from tests.conftest import sleeper_opts
from tests.support.server import RunningServer
from tests.support.signed import error_of, signed_request

pytestmark = pytest.mark.docker

SCRIPT = "for i in 1 2 3; do echo out$i; echo err$i >&2; done; sleep 1; echo late"


def _finished_container(client: HttpDockerRunnerClient) -> StartedContainer:
    started = client.start_container(sleeper_opts(cmd=["sh", "-c", SCRIPT], auto_remove=False))
    # follow=true ends with the container: reading it whole waits for the end
    list(client.logs(started.container_id))
    return started


def test_non_follow_reads_what_is_there_and_ends(client: HttpDockerRunnerClient) -> None:
    """follow=false reads what is there, honouring stdout, stderr, tail and timestamps, then ends."""
    started = _finished_container(client)
    try:
        chunks = list(client.logs(started.container_id, follow=False))
        stdout = b"".join(c.data for c in chunks if c.stream == "stdout")
        stderr = b"".join(c.data for c in chunks if c.stream == "stderr")
        assert (stdout, stderr) == (b"out1\nout2\nout3\nlate\n", b"err1\nerr2\nerr3\n")
        only_err = list(client.logs(started.container_id, follow=False, stdout=False))
        assert {c.stream for c in only_err} == {"stderr"}
        tail = b"".join(c.data for c in client.logs(started.container_id, follow=False, tail=1, stderr=False))
        assert tail == b"late\n"
        stamped = b"".join(c.data for c in client.logs(started.container_id, follow=False, timestamps=True))
        assert stamped.split(b" ", 1)[0].endswith(b"Z")
    finally:
        client.remove_container(started.container_id, force=True)


def test_follow_streams_until_the_container_ends(client: HttpDockerRunnerClient) -> None:
    """Chunks arrive as they are written (the first long before the last), and end comes with the container."""
    started = client.start_container(sleeper_opts(cmd=["sh", "-c", SCRIPT], auto_remove=False))
    try:
        arrivals = []
        for chunk in client.logs(started.container_id):
            arrivals.append((time.monotonic(), chunk.data))
        assert arrivals[0][1] in (b"out1\n", b"err1\n") and arrivals[-1][1] == b"late\n"
        assert arrivals[-1][0] - arrivals[0][0] >= 0.5  # streamed, not delivered at the end
        assert not client.inspect_container(started.container_id)["State"]["Running"]
    finally:
        client.remove_container(started.container_id, force=True)


def test_literal_false_means_false(runner: RunningServer, client: HttpDockerRunnerClient) -> None:
    """follow=false&stdout=false are false; asking for neither stream is the engine's 400, its message kept."""
    started = _finished_container(client)
    try:
        target = f"/v1/containers/logs/sse?containerId={started.container_id}&follow=false&stdout=false&stderr=1"
        response = signed_request(runner.url, "GET", target)
        assert response.status_code == 200
        assert '"stream":"stderr"' in response.text and '"stream":"stdout"' not in response.text
        assert response.text.rstrip().endswith('data: {"type":"end"}')
        neither = signed_request(runner.url, "GET", target.replace("stderr=1", "stderr=0"))
        assert neither.status_code == 400  # the engine's own answer, with its own message
        assert error_of(neither)["message"] == "Bad parameters: you must choose at least one stream"
    finally:
        client.remove_container(started.container_id, force=True)


def test_bad_queries_and_missing_containers(runner: RunningServer, client: HttpDockerRunnerClient) -> None:
    """Bad booleans and tails are 400 naming the field; a missing container is 404, before any frame."""
    bad = signed_request(runner.url, "GET", "/v1/containers/logs/sse?containerId=x&follow=maybe")
    assert (bad.status_code, error_of(bad)["code"]) == (400, "validation_error") and "follow" in error_of(bad)[
        "message"
    ]
    with pytest.raises(ValidationFailed):
        next(iter(client.logs("x", tail="lots")))
    with pytest.raises(NotFound):
        next(iter(client.logs("does-not-exist-xyz")))


def test_tty_container_logs_are_stdout(client: HttpDockerRunnerClient) -> None:
    """A tty container's output is one stream: all of it arrives as stdout."""
    started = client.start_container(
        sleeper_opts(cmd=["sh", "-c", "echo hi; echo there >&2"], tty=True, auto_remove=False)
    )
    try:
        chunks = list(client.logs(started.container_id))
        assert {c.stream for c in chunks} == {"stdout"}
        assert b"".join(c.data for c in chunks).replace(b"\r\n", b"\n") == b"hi\nthere\n"
    finally:
        client.remove_container(started.container_id, force=True)
