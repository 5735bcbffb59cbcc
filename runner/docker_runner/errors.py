"""The one place that knows status codes: every failure becomes the envelope of PROTOCOL section 2.

::

    ApiError                       status, code, message, retryable, details
    ├── from_engine(...)           engine answers: their status (5xx -> 502 docker_error)
    ├── docker_unavailable()       503, the engine cannot be reached
    ├── validation_error(field)    400
    └── ...                        auth (401), policy (403), exec timeouts (504)

Handlers and middleware raise ``ApiError``; the exception handlers registered by
:func:`exception_handlers` turn it, and Litestar's own exceptions, into responses.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.types import ExceptionHandlersMap

log = logging.getLogger("docker_runner.errors")


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        retryable: bool = False,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.retryable = retryable
        self.details = details or {}
        self.headers = headers or {}

    def envelope(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message, "retryable": self.retryable}
        error["details"] = self.details
        return {"error": error}


def validation_error(field: str, problem: str) -> ApiError:
    return ApiError(400, "validation_error", f"{field}: {problem}", details={"field": field})


def docker_unavailable(reason: str) -> ApiError:
    return ApiError(503, "docker_unavailable", f"Docker engine unavailable: {reason}", retryable=True)


# Engine messages whose meaning clients test for; the rest take a code from the status.
_MESSAGE_CODES = (
    (re.compile(r"^no such container", re.I), "no_such_container"),
    (re.compile(r"^no such image", re.I), "no_such_image"),
    (re.compile(r"^no such exec", re.I), "no_such_exec"),
    (re.compile(r"^(get .*: )?no such volume", re.I), "no_such_volume"),
    (re.compile(r"^container .* is not running", re.I), "container_not_running"),
    (re.compile(r"^container .* is paused", re.I), "container_not_running"),  # PROTOCOL 3.2: running, or 409
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
        return ApiError(502, "docker_error", message, retryable=True, details={"dockerStatus": status})
    return ApiError(status, engine_code(status, message), message)


def _response(error: ApiError) -> Response[Any]:
    return Response(
        content=error.envelope(), status_code=error.status, media_type=MediaType.JSON, headers=error.headers or None
    )


# msgspec names a missing or unknown field in its message: "Object missing required field `image`",
# "Object contains unknown field `bogus` - at `$.resources`"
_NAMED_FIELD = re.compile(r"field `(?P<field>[^`]+)`(?: - at `\$\.?(?P<path>[^`]*)`)?")


def _field_named_in(message: str) -> str | None:
    found = _NAMED_FIELD.search(message)
    if found is None:
        return None
    path = (found.group("path") or "").replace("[", ".").replace("]", "")
    return f"{path}.{found.group('field')}" if path else found.group("field")


def _from_validation(exc: ValidationException) -> ApiError:
    problems = exc.extra if isinstance(exc.extra, list) else []
    parts = []
    fields = []
    for problem in problems:
        if not isinstance(problem, dict):
            continue
        key = str(problem.get("key") or "")
        key = "" if key == "data" else key
        message = str(problem.get("message") or "invalid")
        named = _field_named_in(message)
        field = ".".join(part for part in (key, named) if part)
        if field:
            fields.append(field)
        parts.append(f"{field}: {message}" if field else message)
    message = "; ".join(parts) or str(exc.detail)
    details: dict[str, Any] = {"field": fields[0]} if fields else {}
    return ApiError(400, "validation_error", message, details=details)


_HTTP_CODES = {
    400: "validation_error",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    426: "upgrade_required",
    429: "too_many_requests",
}


def to_api_error(exc: Exception) -> ApiError:
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, ValidationException):
        return _from_validation(exc)
    if isinstance(exc, RecursionError):  # Litestar's JSON decoder lets it through for a too deeply nested body
        return ApiError(400, "validation_error", "The request body is nested too deeply")
    if isinstance(exc, HTTPException) and exc.status_code < 500:
        code = _HTTP_CODES.get(exc.status_code, f"http_{exc.status_code}")
        return ApiError(exc.status_code, code, str(exc.detail))
    log.exception("unhandled error", exc_info=exc)
    return ApiError(500, "internal_error", "internal error")


def handle_exception(_request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    return _response(to_api_error(exc))


def exception_handlers() -> ExceptionHandlersMap:
    return {Exception: handle_exception}
