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
    StreamError,
    Unauthorized,
    UpstreamError,
    ValidationFailed,
    error_from_response,
)
from ._models import (
    ContainerOpts,
    DockerEvent,
    ExecOptions,
    ExecOutput,
    ExecResult,
    LogChunk,
    Resources,
    StartedContainer,
    Ticket,
)
from ._signing import canonical_json, sign_headers
from ._ws import AsyncExecSession, ExecSession

__all__ = [
    "AsyncExecSession",
    "AsyncHttpDockerRunnerClient",
    "Conflict",
    "ContainerOpts",
    "DockerEvent",
    "DockerRunnerError",
    "DockerRunnerRequestError",
    "ExecOptions",
    "ExecOutput",
    "ExecResult",
    "ExecSession",
    "ExecTimeout",
    "Forbidden",
    "HttpDockerRunnerClient",
    "LogChunk",
    "NotFound",
    "Resources",
    "RunnerTimeout",
    "RunnerTransportError",
    "StartedContainer",
    "StreamError",
    "Ticket",
    "Unauthorized",
    "UpstreamError",
    "ValidationFailed",
    "canonical_json",
    "error_from_response",
    "exec_read_timeout_ms",
    "sign_headers",
]
