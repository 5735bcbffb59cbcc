"""What can go wrong, by name; the one table that turns each kind into an HTTP status. Pure: no
Litestar, no docker-py, importable from every package.

::

    ApiError                       kind, code, message, retryable, details -> the envelope of docs/protocol.md
    ├── Kind.INVALID ...           a kind says what happened; STATUS says which status answers it
    ├── from_engine(...)           an engine answer: its own status (a 5xx becomes a retryable 502)
    ├── docker_unavailable()       the engine cannot be reached
    ├── exec_channel_lost()        an exec run's resident command channel died under it
    ├── validation_error(field)    a field of the request is wrong
    └── shutting_down()            the runner is stopping

Code everywhere raises ``ApiError`` with a kind; ``http/errors.py`` turns it, and the web
framework's own exceptions, into responses.
"""

from __future__ import annotations

import enum
import re
from typing import Any


class Kind(enum.Enum):
    INVALID = "invalid"  # the request is malformed: a field, a query, a frame, an archive
    UNAUTHORIZED = "unauthorized"  # the signature, the timestamp, the nonce or the ticket
    FORBIDDEN = "forbidden"  # allowed to nobody: the policy, a browser Origin
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    CONFLICT = "conflict"  # not in this state: a container not running, a removal in progress
    TOO_LARGE = "too_large"
    UNSUPPORTED_MEDIA = "unsupported_media"
    UPGRADE_REQUIRED = "upgrade_required"
    TOO_MANY_REQUESTS = "too_many_requests"
    INTERNAL = "internal"  # a bug of the runner's
    UPSTREAM = "upstream"  # the engine failed, or answered what it should not
    UNAVAILABLE = "unavailable"  # not now: the engine away, a budget full, the runner stopping
    TIMEOUT = "timeout"  # the command's own bound ran out
    PASSTHROUGH = "passthrough"  # a status another party chose (an engine refusal), answered as it is


STATUS: dict[Kind, int] = {
    Kind.INVALID: 400,
    Kind.UNAUTHORIZED: 401,
    Kind.FORBIDDEN: 403,
    Kind.NOT_FOUND: 404,
    Kind.METHOD_NOT_ALLOWED: 405,
    Kind.CONFLICT: 409,
    Kind.TOO_LARGE: 413,
    Kind.UNSUPPORTED_MEDIA: 415,
    Kind.UPGRADE_REQUIRED: 426,
    Kind.TOO_MANY_REQUESTS: 429,
    Kind.INTERNAL: 500,
    Kind.UPSTREAM: 502,
    Kind.UNAVAILABLE: 503,
    Kind.TIMEOUT: 504,
}
_KIND_OF_STATUS = {status: kind for kind, status in STATUS.items()}


def kind_of_status(status: int) -> Kind:
    """The kind another party's status means; one without a kind of its own passes through."""
    return _KIND_OF_STATUS.get(status, Kind.PASSTHROUGH)


class ApiError(Exception):
    def __init__(
        self,
        kind: Kind,
        code: str,
        message: str,
        *,
        retryable: bool = False,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        passthrough_status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.code = code
        self.message = message
        self.retryable = retryable
        self.details = details or {}
        self.headers = headers or {}
        self._passthrough_status = passthrough_status

    @property
    def status(self) -> int:
        if self.kind is Kind.PASSTHROUGH:
            return self._passthrough_status or 500
        return STATUS[self.kind]

    def envelope(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message, "retryable": self.retryable}
        error["details"] = self.details
        return {"error": error}

    def with_message(self, message: str) -> ApiError:
        """The same error, told differently (with the context of whoever passes it on)."""
        return ApiError(
            self.kind,
            self.code,
            message,
            retryable=self.retryable,
            details=self.details,
            headers=self.headers,
            passthrough_status=self._passthrough_status,
        )


def passed_through(status: int, code: str, message: str) -> ApiError:
    """Another party's refusal, with its own status (the kind it means, where it has one)."""
    kind = kind_of_status(status)
    return ApiError(kind, code, message, passthrough_status=status if kind is Kind.PASSTHROUGH else None)


def validation_error(field: str, problem: str) -> ApiError:
    return ApiError(Kind.INVALID, "validation_error", f"{field}: {problem}", details={"field": field})


def docker_unavailable(reason: str, details: dict[str, Any] | None = None) -> ApiError:
    return ApiError(
        Kind.UNAVAILABLE, "docker_unavailable", f"Docker engine unavailable: {reason}", retryable=True, details=details
    )


def engine_lost_during_run(stdout: str, stderr: str) -> ApiError:
    """A run whose engine went away (or restarted) under it: worth retrying, with what it printed."""
    return docker_unavailable("the engine went away during the run", {"stdout": stdout, "stderr": stderr})


def exec_channel_lost(stdout: str, stderr: str) -> ApiError:
    """An exec run whose resident command channel died under it (its process killed, the container
    restarted): worth retrying (the command may have run in part), with what it printed."""
    return ApiError(
        Kind.UNAVAILABLE,
        "exec_channel_lost",
        "The exec channel ended before the command did; the command may have run in part",
        retryable=True,
        details={"stdout": stdout, "stderr": stderr},
    )


def shutting_down(details: dict[str, Any] | None = None) -> ApiError:
    return ApiError(Kind.UNAVAILABLE, "shutting_down", "The runner is shutting down", retryable=True, details=details)


def internal_error(message: str = "internal error") -> ApiError:
    return ApiError(Kind.INTERNAL, "internal_error", message)


# Engine messages whose meaning clients test for; the rest take a code from the status.
_MESSAGE_CODES = (
    (re.compile(r"^no such container", re.I), "no_such_container"),
    (re.compile(r"^no such image", re.I), "no_such_image"),
    (re.compile(r"^no such exec", re.I), "no_such_exec"),
    (re.compile(r"^(get .*: )?no such volume", re.I), "no_such_volume"),
    (re.compile(r"^container .* is not running", re.I), "container_not_running"),
    (re.compile(r"^container .* is paused", re.I), "container_not_running"),  # running, or 409
    (re.compile(r"is already in progress", re.I), "removal_in_progress"),
    (re.compile(r"^could not find the file|^lstat .*: no such file or directory", re.I), "no_such_path"),
    (re.compile(r"pull access denied|manifest unknown|repository .* not found", re.I), "image_not_found"),
)
_STATUS_CODES = {
    304: "not_modified",
    400: "bad_parameter",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    409: "conflict",
    500: "server_error",
}


def engine_code(status: int, message: str) -> str:
    for pattern, code in _MESSAGE_CODES:
        if pattern.search(message):
            return code
    return _STATUS_CODES.get(status, f"http_{status}")


def from_engine(status: int, message: str) -> ApiError:
    """An engine error answer: its own status and message; a 5xx becomes a retryable 502."""
    message = message.strip() or f"engine answered {status}"
    if status >= 500:
        return ApiError(Kind.UPSTREAM, "docker_error", message, retryable=True, details={"dockerStatus": status})
    return passed_through(status, engine_code(status, message), message)
