"""Typed Python client of the docker-runner service."""

from ._client import AsyncHttpDockerRunnerClient, HttpDockerRunnerClient, exec_read_timeout_ms
from ._exceptions import (
    Conflict,
    DockerRunnerError,
    DockerRunnerRequestError,
    ExecTimeout,
    Forbidden,
    NotFound,
    RunnerTimeout,
    RunnerTransportError,
    Unauthorized,
    UpstreamError,
    ValidationFailed,
    error_from_response,
)
from ._models import ContainerOpts, ExecOptions, ExecResult, Resources, StartedContainer
from ._signing import canonical_json, sign_headers

__all__ = [
    "AsyncHttpDockerRunnerClient",
    "Conflict",
    "ContainerOpts",
    "DockerRunnerError",
    "DockerRunnerRequestError",
    "ExecOptions",
    "ExecResult",
    "ExecTimeout",
    "Forbidden",
    "HttpDockerRunnerClient",
    "NotFound",
    "Resources",
    "RunnerTimeout",
    "RunnerTransportError",
    "StartedContainer",
    "Unauthorized",
    "UpstreamError",
    "ValidationFailed",
    "canonical_json",
    "error_from_response",
    "exec_read_timeout_ms",
    "sign_headers",
]
