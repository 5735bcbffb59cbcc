"""Status mapping on both sides: engine answers to envelopes, envelopes to client exceptions."""

from __future__ import annotations

import json

import pytest

from docker_runner.errors import STATUS, ApiError, Kind, from_engine
from docker_runner_client import (
    Conflict,
    DockerRunnerRequestError,
    ExecTimeout,
    Forbidden,
    NotFound,
    Unauthorized,
    UpstreamError,
    ValidationFailed,
    error_from_response,
)


@pytest.mark.parametrize(
    ("status", "message", "expected"),
    [
        (404, "No such container: abc", (404, "no_such_container", False)),
        (404, "No such image: x:1", (404, "no_such_image", False)),
        (404, "No such exec instance: 12", (404, "no_such_exec", False)),
        (404, "get vol: no such volume", (404, "no_such_volume", False)),
        (409, "Container 1f2e is not running", (409, "container_not_running", False)),
        (409, "removal of container abc is already in progress", (409, "removal_in_progress", False)),
        (409, "Conflict. The container name is already in use", (409, "conflict", False)),
        (400, "Minimum memory limit allowed is 6MB", (400, "bad_parameter", False)),
        (304, "", (304, "not_modified", False)),
        (500, "OCI runtime failed", (502, "docker_error", True)),
        (503, "busy", (502, "docker_error", True)),
    ],
)
def test_engine_errors(status: int, message: str, expected: tuple[int, str, bool]) -> None:
    """The engine's status is kept with a snake-case code; a 5xx becomes a retryable 502."""
    error = from_engine(status, message)
    assert (error.status, error.code, error.retryable) == expected
    if status >= 500:
        assert error.details == {"dockerStatus": status}
    elif message:
        assert error.message == message


def test_envelope_shape() -> None:
    """The envelope has exactly code, message, retryable and details."""
    envelope = ApiError(Kind.CONFLICT, "conflict", "busy", details={"x": 1}).envelope()
    assert envelope == {"error": {"code": "conflict", "message": "busy", "retryable": False, "details": {"x": 1}}}


def _body(code: str, message: str = "m", retryable: bool = False, **details: object) -> bytes:
    return json.dumps(
        {"error": {"code": code, "message": message, "retryable": retryable, "details": details}}
    ).encode()


@pytest.mark.parametrize(
    ("status", "code", "cls"),
    [
        (400, "validation_error", ValidationFailed),
        (401, "invalid_signature", Unauthorized),
        (403, "policy_denied", Forbidden),
        (404, "no_such_container", NotFound),
        (409, "conflict", Conflict),
        (502, "docker_error", UpstreamError),
        (503, "docker_unavailable", UpstreamError),
        (504, "exec_timeout", ExecTimeout),
        (418, "teapot", DockerRunnerRequestError),
    ],
)
def test_client_exception_by_status(status: int, code: str, cls: type[DockerRunnerRequestError]) -> None:
    """Each status maps to its class and keeps the envelope's fields."""
    error = error_from_response(status, _body(code, "the message", status >= 502, extra=1))
    assert type(error) is cls
    assert (error.status_code, error.code, error.message, error.retryable) == (
        status,
        code,
        "the message",
        status >= 502,
    )
    assert error.details == {"extra": 1}


def test_exec_timeout_carries_partial_output() -> None:
    """ExecTimeout exposes the partial stdout and stderr from details."""
    error = error_from_response(504, _body("exec_idle_timeout", stdout="so far", stderr="err"))
    assert isinstance(error, ExecTimeout)
    assert (error.stdout, error.stderr, error.idle) == ("so far", "err", True)


def test_non_envelope_answer() -> None:
    """A proxy's HTML error still becomes a structured exception, retryable for 502/503."""
    error = error_from_response(502, b"<html>bad gateway</html>")
    assert isinstance(error, UpstreamError)
    assert error.code == "unknown_error" and error.retryable and "bad gateway" in error.message
    gateway = error_from_response(504, b"gateway timeout")
    assert type(gateway) is DockerRunnerRequestError


def test_every_kind_answers_with_one_status() -> None:
    """Each kind has its status in errors.STATUS; only a passthrough keeps another party's own."""
    assert set(STATUS) == set(Kind) - {Kind.PASSTHROUGH}
    assert len(set(STATUS.values())) == len(STATUS)
    assert from_engine(304, "").status == 304 and from_engine(304, "").kind is Kind.PASSTHROUGH
    assert from_engine(404, "No such container: x").kind is Kind.NOT_FOUND
    assert ApiError(Kind.UNAVAILABLE, "x", "y").status == 503
