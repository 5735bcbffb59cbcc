"""The web framework's side of errors: every exception a handler or the framework raises becomes
the envelope, with the status ``errors.STATUS`` gives its kind. Registered on the app as its
``exception_handlers``, the one place responses for errors are built."""

from __future__ import annotations

import logging
import re
from typing import Any

from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.types import ExceptionHandlersMap

from ..errors import ApiError, Kind, internal_error, passed_through

log = logging.getLogger("docker_runner.errors")


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
    return ApiError(Kind.INVALID, "validation_error", message, details=details)


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
        return ApiError(Kind.INVALID, "validation_error", "The request body is nested too deeply")
    if isinstance(exc, HTTPException) and exc.status_code < 500:
        code = _HTTP_CODES.get(exc.status_code, f"http_{exc.status_code}")
        return passed_through(exc.status_code, code, str(exc.detail))
    log.exception("unhandled error", exc_info=exc)
    return internal_error()


def handle_exception(_request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    return _response(to_api_error(exc))


def exception_handlers() -> ExceptionHandlersMap:
    return {Exception: handle_exception}
