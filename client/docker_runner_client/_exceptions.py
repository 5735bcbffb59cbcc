"""What the client raises.

::

    DockerRunnerError
    ├── RunnerTransportError        no answer: connect failure, timeout, reset   (status_code 0)
    │   └── RunnerTimeout
    ├── StreamError                 an open stream reported a failure in an error frame (status_code 0)
    └── DockerRunnerRequestError    the runner answered 4xx/5xx
        ├── ValidationFailed        400
        ├── Unauthorized            401
        ├── Forbidden               403
        ├── NotFound                404
        ├── Conflict                409
        ├── UpstreamError           502 / 503 (engine error, engine or runner unavailable)
        └── ExecTimeout             504 exec_timeout / exec_idle_timeout, with partial stdout/stderr

Every instance carries ``status_code``, ``code``, ``message``, ``retryable`` and ``details``.
:func:`error_from_response` is the one place that maps an answer to its class.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any


class DockerRunnerError(Exception):
    """Root of everything the client raises."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        code: str,
        retryable: bool = False,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.code = code
        self.retryable = retryable
        self.details: dict[str, Any] = details or {}

    def __str__(self) -> str:
        return f"{self.status_code} {self.code}: {self.message}"


class RunnerTransportError(DockerRunnerError):
    """The runner gave no answer: status_code is 0 and code starts with ``runner_``."""

    def __init__(self, message: str, *, code: str, retryable: bool) -> None:
        super().__init__(message, status_code=0, code=code, retryable=retryable)


class RunnerTimeout(RunnerTransportError):
    """No answer within the client's timeout."""


class StreamError(DockerRunnerError):
    """A stream that was open (SSE) reported a failure in an error frame."""

    def __init__(self, message: str, *, code: str = "stream_error") -> None:
        super().__init__(message, status_code=0, code=code, retryable=False)


class DockerRunnerRequestError(DockerRunnerError):
    """The runner answered with an error status and envelope."""


class ValidationFailed(DockerRunnerRequestError):
    pass


class Unauthorized(DockerRunnerRequestError):
    pass


class Forbidden(DockerRunnerRequestError):
    pass


class NotFound(DockerRunnerRequestError):
    pass


class Conflict(DockerRunnerRequestError):
    pass


class UpstreamError(DockerRunnerRequestError):
    pass


class ExecTimeout(DockerRunnerRequestError):
    """An exec ran past ``timeoutMs`` or ``idleTimeoutMs``; what it printed so far is kept."""

    @property
    def stdout(self) -> str:
        return str(self.details.get("stdout", ""))

    @property
    def stderr(self) -> str:
        return str(self.details.get("stderr", ""))

    @property
    def idle(self) -> bool:
        return self.code == "exec_idle_timeout"


_BY_STATUS: dict[int, type[DockerRunnerRequestError]] = {
    400: ValidationFailed,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    502: UpstreamError,
    503: UpstreamError,
    504: ExecTimeout,
}


def error_from_frame(frame: dict[str, Any]) -> DockerRunnerRequestError:
    """The exception for an interactive session's error frame (it carries the status the runner
    would have answered)."""
    status = int(frame.get("status") or 500)
    body = {"code": frame.get("code"), "message": frame.get("error"), "retryable": frame.get("retryable", False)}
    return error_from_response(status, json.dumps({"error": body}).encode())


def error_from_response(status_code: int, body: bytes) -> DockerRunnerRequestError:
    """Build the exception for an error answer, whatever its body looks like."""
    envelope: Any = None
    with contextlib.suppress(ValueError):
        envelope = json.loads(body)
    error = envelope.get("error") if isinstance(envelope, dict) else None
    if isinstance(error, dict):
        code = str(error.get("code") or "unknown_error")
        message = str(error.get("message") or "")
        retryable = bool(error.get("retryable", False))
        details = error.get("details") if isinstance(error.get("details"), dict) else {}
    else:
        code = "unknown_error"
        message = body[:500].decode("utf-8", "replace") or f"HTTP {status_code}"
        retryable = status_code in (502, 503)
        details = {}
    cls = _BY_STATUS.get(status_code, DockerRunnerRequestError)
    if cls is ExecTimeout and not code.startswith("exec_"):
        cls = DockerRunnerRequestError  # a gateway timeout from a proxy, not the runner's exec
    return cls(message, status_code=status_code, code=code, retryable=retryable, details=details)
