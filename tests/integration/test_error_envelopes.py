"""Every failure path answers the envelope of docs/protocol.md section 2, never a stack trace."""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from docker_runner_client import HttpDockerRunnerClient, UpstreamError
from tests.support.server import RunningServer, make_settings, running_runner
from tests.support.signed import error_of, signed_request

pytestmark = pytest.mark.docker


def test_unknown_route_is_404(runner: RunningServer) -> None:
    response = httpx.get(runner.url + "/v1/nothing-here")
    assert (response.status_code, error_of(response)["code"]) == (404, "not_found")


def test_wrong_method_is_405(runner: RunningServer) -> None:
    response = signed_request(runner.url, "GET", "/v1/containers/start")
    assert (response.status_code, error_of(response)["code"]) == (405, "method_not_allowed")


def test_malformed_json_is_400(runner: RunningServer) -> None:
    response = signed_request(
        runner.url, "POST", "/v1/containers/start", content=b'{"image": ', headers={"content-type": "application/json"}
    )
    assert (response.status_code, error_of(response)["code"]) == (400, "validation_error")
    assert "Traceback" not in response.text


@pytest.mark.parametrize("signed", [True, False])
def test_deeply_nested_json_is_400_or_401_never_500(runner: RunningServer, signed: bool) -> None:
    """A body nested past any recursion limit is refused with an envelope, signed or not."""
    body = b"[" * 100_000 + b"]" * 100_000
    headers = {"content-type": "application/json"}
    if signed:
        response = signed_request(runner.url, "POST", "/v1/containers/start", content=body, headers=headers)
    else:
        now_ms = str(int(time.time() * 1000))
        forged = {"x-dr-timestamp": now_ms, "x-dr-nonce": str(uuid.uuid4()), "x-dr-signature": "AA=="}
        response = httpx.post(runner.url + "/v1/containers/start", content=body, headers=headers | forged)
    assert (response.status_code, error_of(response)["code"]) == (
        (400, "validation_error") if signed else (401, "invalid_signature")
    )


def test_timestamp_of_thousands_of_digits_is_401(runner: RunningServer) -> None:
    """A timestamp past Python's int() digit limit is timestamp_out_of_range, not a 500."""
    headers = {"x-dr-timestamp": "9" * 5000, "x-dr-nonce": str(uuid.uuid4()), "x-dr-signature": "AA=="}
    response = httpx.get(runner.url + "/v1/containers/inspect?containerId=x", headers=headers)
    assert (response.status_code, error_of(response)["code"]) == (401, "timestamp_out_of_range")


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/containers/start", {}, "image"),
        ("/v1/containers/start", {"image": "x", "surprise": 1}, "surprise"),
        ("/v1/containers/start", {"image": "x", "resources": {"bogus": 1}}, "resources.bogus"),
        ("/v1/containers/start", {"image": "x", "ttlSeconds": 0}, "ttlSeconds"),
        ("/v1/containers/start", {"image": "x", "resources": {"memoryBytes": "lots"}}, "resources.memoryBytes"),
        ("/v1/containers/start", {"image": "x", "env": 3}, "env"),
        ("/v1/containers/stop", {"containerId": ""}, "containerId"),
        ("/v1/containers/findByLabels", {"labels": {}}, "labels"),
        ("/v1/exec/resize", {"execId": "e", "size": {"cols": 0, "rows": 10}}, "size.cols"),
        ("/v1/images/ensure", {"platform": "linux/amd64"}, "image"),
    ],
)
def test_validation_names_the_field(runner: RunningServer, path: str, body: dict[str, object], field: str) -> None:
    response = signed_request(runner.url, "POST", path, json_body=body)
    error = error_of(response)
    assert (response.status_code, error["code"], error["retryable"]) == (400, "validation_error", False)
    assert field in error["message"]
    assert error["details"]["field"] == field


def test_missing_query_parameter_is_400(runner: RunningServer) -> None:
    response = signed_request(runner.url, "GET", "/v1/containers/inspect")
    error = error_of(response)
    assert (response.status_code, error["code"]) == (400, "validation_error")
    assert "containerId" in error["message"]


def test_oversized_body_is_413() -> None:
    with running_runner(make_settings(max_body_bytes=1024)) as small:
        response = signed_request(small.url, "POST", "/v1/containers/touch", json_body={"containerId": "x" * 2048})
        assert (response.status_code, error_of(response)["code"]) == (413, "payload_too_large")
        unsigned = httpx.post(small.url + "/v1/containers/touch", content=b"x" * 4096)
        assert unsigned.status_code == 401  # headers are checked before any body is read


@pytest.fixture
def engine_down(tmp_path: Path) -> Iterator[RunningServer]:
    """A runner whose DOCKER_HOST points at a socket nothing listens on."""
    with running_runner(make_settings(docker_host=f"unix://{tmp_path}/absent.sock")) as server:
        yield server


def test_engine_down_is_503(engine_down: RunningServer) -> None:
    """The runner starts without an engine; ready and engine routes answer 503 docker_unavailable."""
    assert httpx.get(engine_down.url + "/v1/health").status_code == 200
    ready = httpx.get(engine_down.url + "/v1/ready")
    assert (ready.status_code, error_of(ready)["code"], error_of(ready)["retryable"]) == (
        503,
        "docker_unavailable",
        True,
    )
    client = HttpDockerRunnerClient(engine_down.url, engine_down.settings.shared_secret, max_retries=0)
    with client, pytest.raises(UpstreamError) as caught:
        client.inspect_container("x")
    assert (caught.value.status_code, caught.value.code) == (503, "docker_unavailable")


def _fake_engine_answering_500(path: Path) -> threading.Thread:
    """A socket that answers every request with an engine-style 500, for the 502 mapping only."""
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen()

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                conn.recv(65536)
                body = b'{"message":"engine exploded"}'
                conn.sendall(
                    b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\n"
                    b"Api-Version: 1.41\r\nContent-Length: "
                    + str(len(body)).encode()
                    + b"\r\nConnection: close\r\n\r\n"
                    + body
                )

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    thread.server = server  # type: ignore[attr-defined]
    return thread


def test_engine_5xx_is_502(tmp_path: Path) -> None:
    """An engine 5xx answers 502 docker_error, retryable, with the engine's status in details."""
    sock = tmp_path / "engine.sock"
    fake = _fake_engine_answering_500(sock)
    try:
        settings = make_settings(docker_host=f"unix://{sock}", docker_api_version="1.41")
        with running_runner(settings) as server:
            response = signed_request(server.url, "GET", "/v1/containers/inspect?containerId=x")
            error = error_of(response)
            assert (response.status_code, error["code"], error["retryable"]) == (502, "docker_error", True)
            assert error["details"] == {"dockerStatus": 500} and error["message"] == "engine exploded"
    finally:
        fake.server.close()  # type: ignore[attr-defined]
