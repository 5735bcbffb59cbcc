"""The OpenAPI document: every REST route, its body, query, answers and error envelope."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec
from litestar import Request, get
from litestar.openapi import OpenAPIConfig
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import (
    Components,
    OpenAPIMediaType,
    OpenAPIResponse,
    Operation,
    RequestBody,
    Schema,
    SecurityScheme,
)
from litestar.openapi.spec.enums import OpenAPIFormat, OpenAPIType

from .. import __version__
from .middleware import OPEN_ROUTE


class ErrorDetail(msgspec.Struct):
    code: str
    message: str
    retryable: bool
    details: dict[str, Any] = msgspec.field(default_factory=dict)


class ErrorEnvelope(msgspec.Struct):
    """Every error answer, from every route (docs/protocol.md section 2)."""

    error: ErrorDetail


_MEANINGS = {
    400: "validation_error: the message names the field; or an engine 400",
    401: "authentication failed: missing_headers, invalid_timestamp, timestamp_out_of_range, replayed_nonce, "
    "invalid_signature, invalid_ticket",
    403: "policy_denied: the message names the field and the policy rule",
    404: "no such container, image, exec or volume (or not the runner's own)",
    409: "the engine's conflict, e.g. container_not_running",
    413: "payload_too_large",
    426: "upgrade_required",
    502: "docker_error: the engine answered 5xx (details.dockerStatus)",
    503: "docker_unavailable, or replay_cache_full: retryable",
    504: "exec_timeout / exec_idle_timeout, with the output so far in details",
}
SIGNED_ERRORS = (400, 401, 403, 404, 409, 413, 502, 503)
SIGNED: list[dict[str, list[str]]] = [{"timestamp": [], "nonce": [], "signature": []}]


def errors(*statuses: int) -> dict[int, ResponseSpec]:
    """Error answers to document: those of every signed route, and ``statuses`` besides."""
    return {
        status: ResponseSpec(data_container=ErrorEnvelope, description=_MEANINGS[status], generate_examples=False)
        for status in sorted({*SIGNED_ERRORS, *statuses})
    }


TAR_MEDIA_TYPE = "application/x-tar"
_TAR_CONTENT = {TAR_MEDIA_TYPE: OpenAPIMediaType(schema=Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.BINARY))}


@dataclass
class TarUpload(Operation):
    """The raw tar upload: its body is the tar itself, streamed."""

    def __post_init__(self) -> None:
        self.request_body = RequestBody(content=_TAR_CONTENT, required=True, description="a tar archive")


@dataclass
class TarDownload(Operation):
    """The raw tar download: a 200 whose body is the tar itself, streamed."""

    def __post_init__(self) -> None:
        if self.responses is not None and "200" in self.responses:
            ok = self.responses["200"]
            if isinstance(ok, OpenAPIResponse):
                ok.content = _TAR_CONTENT
                ok.description = "the tar archive of the path"


def _header_scheme(name: str, what: str) -> SecurityScheme:
    return SecurityScheme(type="apiKey", security_scheme_in="header", name=name, description=what)


def openapi_config() -> OpenAPIConfig:
    return OpenAPIConfig(
        title="docker-runner",
        version=__version__,
        description=(
            "A Docker Engine behind a signed HTTP API (the wire contract: docs/protocol.md). "
            "Signed routes need all three headers."
        ),
        security=SIGNED,
        components=Components(
            security_schemes={
                "timestamp": _header_scheme("x-dr-timestamp", "client clock, Unix epoch milliseconds"),
                "nonce": _header_scheme("x-dr-nonce", "a fresh random value per request"),
                "signature": _header_scheme(
                    "x-dr-signature", "base64 HMAC-SHA256 over method, path and query, timestamp, nonce, body hash"
                ),
            }
        ),
        render_plugins=[],
        path="/openapi",
    )


@get("/openapi.json", opt={OPEN_ROUTE: True}, include_in_schema=False, sync_to_thread=False)
def openapi_document(request: Request[Any, Any, Any]) -> dict[str, Any]:
    return request.app.openapi_schema.to_schema()
