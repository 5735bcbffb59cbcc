"""docs/protocol.md stays exact: what the runner serves, signs and answers is written in it."""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

from litestar import Litestar
from litestar.routes import HTTPRoute, WebSocketRoute

import docker_runner
from docker_runner import errors
from docker_runner.app import create_app
from docker_runner.http import errors as http_errors
from tests.support.server import make_settings

DOC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"
VECTORS = json.loads((Path(__file__).parent / "protocol-vectors.json").read_text())["vectors"]
PACKAGE = Path(docker_runner.__file__).parent
# A route as the document writes it, in backticks: `POST /v1/exec/run` or `GET /v1/containers/logs/sse?...`
_DOCUMENTED_ROUTE = re.compile(r"`(GET|POST|PUT|DELETE|PATCH|HEAD) (/[^`?\s]*)[^`]*`")
_PARAMETER = re.compile(r"\{[^}]*\}")
_NOT_ROUTES = {"OPTIONS", "HEAD"}  # answered for every path by Litestar itself


def _doc() -> str:
    return DOC.read_text(encoding="utf-8")


@cache
def _app() -> Litestar:
    # the UI and the cluster mode on: their routes are served too (building the app asks no engine)
    return create_app(make_settings(ui=True, cluster="swarm"))


def _normal(path: str) -> str:
    """`/v1/jobs/{jobId}` and `/v1/jobs/{job_id}` are the same route."""
    return _PARAMETER.sub("{}", path)


def _served() -> set[tuple[str, str]]:
    served = set()
    for route in _app().routes:
        if isinstance(route, WebSocketRoute):
            served.add(("GET", _normal(route.path_format)))  # the upgrade is a GET
        elif isinstance(route, HTTPRoute):
            served |= {(method, _normal(route.path_format)) for method in route.methods - _NOT_ROUTES}
    return served


def _documented() -> set[tuple[str, str]]:
    return {(method, _normal(path)) for method, path in _DOCUMENTED_ROUTE.findall(_doc())}


def test_every_served_route_is_documented() -> None:
    """Every method and path the app serves (UI and Litestar's schema pages included) is in the document."""
    missing = sorted(_served() - _documented())
    assert not missing, f"routes served but not in docs/protocol.md: {missing}"


def test_every_documented_route_is_served() -> None:
    """The document names no route that the app does not serve."""
    phantom = sorted(_documented() - _served())
    assert not phantom, f"routes in docs/protocol.md that the app does not serve: {phantom}"


def test_every_signing_vector_is_in_the_document() -> None:
    """Each vector of protocol-vectors.json is written out: inputs, hashed body, payload, expected headers."""
    doc = _doc()
    for vector in VECTORS:
        payload = "\n".join(
            (
                vector["method"].upper(),
                vector["pathWithQuery"],
                vector["timestamp"],
                vector["nonce"],
                vector["bodyHash"],
            )
        )
        expected = {
            "name": vector["name"],
            "secret": vector["secret"],
            "method": vector["method"],
            "pathWithQuery": vector["pathWithQuery"],
            "timestamp": vector["timestamp"],
            "nonce": vector["nonce"],
            "canonicalBody": vector["canonicalBody"],
            "bodyHash": vector["bodyHash"],
            "payload": payload,
            "signature": vector["signature"],
        }
        for what, text in expected.items():
            assert text in doc, f"vector {vector['name']}: its {what} is not in docs/protocol.md"


def _call_name(call: ast.Call) -> str | None:
    if isinstance(call.func, ast.Name):
        return call.func.id
    if isinstance(call.func, ast.Attribute):
        return call.func.attr
    return None


def _argument(call: ast.Call, index: int, keyword: str) -> ast.expr | None:
    if len(call.args) > index:
        return call.args[index]
    return next((item.value for item in call.keywords if item.arg == keyword), None)


def _calls(tree: ast.AST) -> Iterator[ast.Call]:
    return (node for node in ast.walk(tree) if isinstance(node, ast.Call))


def _trees() -> list[ast.Module]:
    return [ast.parse(path.read_text(encoding="utf-8")) for path in sorted(PACKAGE.rglob("*.py"))]


def _code_carriers(trees: list[ast.Module]) -> dict[str, tuple[int, str]]:
    """Callables whose argument becomes an error code: ApiError and JobError themselves, and every
    function that passes one of its own parameters on as ApiError's code (``auth_error(code, ...)``)."""
    carriers = {"ApiError": (1, "code"), "JobError": (0, "code")}
    for tree in trees:
        for function in (node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)):
            parameters = [argument.arg for argument in function.args.args]
            for call in _calls(function):
                code = _argument(call, 1, "code") if _call_name(call) == "ApiError" else None
                if isinstance(code, ast.Name) and code.id in parameters:
                    carriers[function.name] = (parameters.index(code.id), code.id)
    return carriers


def _defined_codes() -> set[str]:
    """Every error code the runner can put on the wire: literal codes at ApiError / JobError call sites
    (directly or through a helper), and the mapping tables of errors.py."""
    trees = _trees()
    carriers = _code_carriers(trees)
    codes: set[str] = set()
    for tree in trees:
        for call in _calls(tree):
            carrier = carriers.get(_call_name(call) or "")
            if carrier is None:
                continue
            code = _argument(call, *carrier)
            if isinstance(code, ast.Constant) and isinstance(code.value, str):
                codes.add(code.value)
    codes |= set(http_errors._HTTP_CODES.values()) | set(errors._STATUS_CODES.values())
    codes |= {code for _pattern, code in errors._MESSAGE_CODES}
    return codes


def test_every_error_code_is_documented() -> None:
    """Every error code the runner defines (tables, ApiError call sites, job errors) is in the document."""
    codes = _defined_codes()
    # the walk itself works: codes reached directly, through auth_error, through the tables, of jobs
    assert {"validation_error", "missing_headers", "invalid_ticket", "no_such_container", "job_oom"} <= codes
    doc = _doc()
    missing = sorted(code for code in codes if f"`{code}`" not in doc)
    assert not missing, f"error codes not in docs/protocol.md: {missing}"
    assert "`http_<status>`" in doc  # the fallback of both tables


def _schema_names(document: dict[str, Any]) -> set[str]:
    names = set()
    for schema in document["components"]["schemas"].values():
        names |= set(schema.get("properties") or {})
    for operations in document["paths"].values():
        for operation in operations.values():
            if isinstance(operation, dict):
                names |= {p["name"] for p in operation.get("parameters", []) if p["in"] in ("query", "header")}
    return names


def test_every_field_and_parameter_is_documented() -> None:
    """Every body and answer field, and every query and header parameter, of the OpenAPI document is in it."""
    names = _schema_names(_app().openapi_schema.to_schema())
    doc = _doc()
    missing = sorted(name for name in names if f"`{name}`" not in doc)
    assert not missing, f"fields or parameters not in docs/protocol.md: {missing}"
