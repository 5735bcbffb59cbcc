"""The OpenAPI document, and a bounded schemathesis run against a live runner: no unexplained 5xx,
no answer outside the schema."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import docker
import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from docker_runner.app import create_app
from docker_runner_client._signing import sign_headers
from tests.support.server import TEST_SECRET, RunningServer, make_settings, running_runner

pytestmark = pytest.mark.docker

# 5xx answers a runner may give for reasons outside it: the engine failed, or is away, or an exec
# ran out of time. Each must come in the error envelope; anything else (a 500) is a runner bug.
EXPLAINED_5XX = {
    502: {"docker_error"},
    503: {"docker_unavailable", "replay_cache_full"},
    504: {"exec_timeout", "exec_idle_timeout"},
}


class SignedAuth(requests.auth.AuthBase):
    """Signs each request over exactly what requests will send."""

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        body = request.body or b""
        if isinstance(body, str):
            body = body.encode("utf-8")
        headers = sign_headers(
            TEST_SECRET,
            str(request.method),
            str(request.path_url),
            body,
            str(int(time.time() * 1000)),
            str(uuid.uuid4()),
        )
        request.headers.update(headers)
        return request


def no_unexplained_server_error(ctx: Any, response: schemathesis.Response, case: schemathesis.Case) -> bool | None:
    if response.status_code < 500:
        return None
    code = (response.json() or {}).get("error", {}).get("code")
    if code not in EXPLAINED_5XX.get(response.status_code, set()):
        raise AssertionError(
            f"{case.method} {case.formatted_path} answered {response.status_code} {response.text[:300]}"
        )
    return None


@pytest.fixture(scope="module")
def fuzzed_runner(docker_api: docker.APIClient) -> Iterator[RunningServer]:
    server_settings = make_settings()
    with running_runner(server_settings) as server:
        yield server
    instance = f"dev.docker-runner.instance={server_settings.instance}"
    for leftover in docker_api.containers(all=True, filters={"label": instance}):
        docker_api.remove_container(leftover["Id"], force=True, v=True)


def _document() -> dict[str, Any]:
    """The runner's OpenAPI document, built without an engine (the same one /openapi.json serves)."""
    app = create_app(make_settings())
    document: dict[str, Any] = app.openapi_schema.to_schema()
    return document


schemathesis.serializer.alias("application/x-tar", "application/octet-stream")
# Streams (SSE, the WebSocket's plain GET) never end on their own: they have their own tests.
schema = schemathesis.openapi.from_dict(_document()).exclude(path_regex=r"/sse$|/ws$")


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_fuzzed_requests_stay_inside_the_schema(case: schemathesis.Case, fuzzed_runner: RunningServer) -> None:
    response = case.call(base_url=fuzzed_runner.url, auth=SignedAuth(), timeout=30)
    case.validate_response(
        response,
        checks=[
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
            no_unexplained_server_error,
        ],
    )


def test_openapi_document_is_open_and_complete(fuzzed_runner: RunningServer) -> None:
    """Served without auth; every REST route, its body and query, and the error envelope are in it."""
    document = httpx.get(fuzzed_runner.url + "/openapi.json").json()
    paths = document["paths"]
    for path in (
        "/v1/containers",
        "/v1/containers/start",
        "/v1/containers/stop",
        "/v1/containers/remove",
        "/v1/containers/inspect",
        "/v1/containers/labels",
        "/v1/containers/networks",
        "/v1/containers/findByLabels",
        "/v1/containers/listByVolume",
        "/v1/containers/touch",
        "/v1/containers/putArchive",
        "/v1/containers/{container_id}/archive",
        "/v1/images/ensure",
        "/v1/volumes/remove",
        "/v1/exec/run",
        "/v1/exec/resize",
        "/v1/health",
        "/v1/ready",
        "/v1/jobs",
        "/v1/jobs/{job_id}",
    ):
        assert path in paths, path
    start = paths["/v1/containers/start"]["post"]
    assert "requestBody" in start and start["responses"]["403"]["content"]["application/json"]["schema"][
        "$ref"
    ].endswith("ErrorEnvelope")
    assert paths["/v1/exec/run"]["post"]["responses"]["504"]
    inspect_parameters = {p["name"] for p in paths["/v1/containers/inspect"]["get"]["parameters"]}
    assert "containerId" in inspect_parameters
    assert set(document["components"]["securitySchemes"]) == {"timestamp", "nonce", "signature"}
