"""One-shot runs, test runs from a patch, and the pools behind them."""

from __future__ import annotations

import base64
import binascii
import io
import json
from typing import IO, Annotated, Any

import msgspec
from litestar import Request, get, post, put
from litestar.params import JSONBody, QueryParameter

from ...containers.spec import NonEmptyStr
from ...errors import validation_error
from ...exec.cancel import watch_disconnect
from ...protocol.patch_tar import checked_removals, rewrite_patch, tar_of_files
from ...runtime import Runtime
from ...workloads import bootstrap
from ...workloads.runs import Given, OneUseRun, patch_refusals, put_tar, remove_paths, run_one_use
from ..dependencies import RuntimeDep
from ..middleware import STREAMED_BODY, spooled_body
from ..observe import note
from ..openapi import TarUpload, errors
from ..placed_runs import placed_run

NonNegativeInt = Annotated[int, msgspec.Meta(ge=0)]
PositiveInt = Annotated[int, msgspec.Meta(ge=1)]
DEFAULT_TEST_TIMEOUT_MS = 300_000
DEFAULT_WORKDIR = "/testbed"


def _b64(field: str, value: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise validation_error(field, "is not valid base64") from None


class RunBody(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    image: NonEmptyStr
    command: NonEmptyStr | Annotated[list[str], msgspec.Meta(min_length=1)]
    stdin: str | None = None
    files: dict[str, str] | None = None  # relative path (to workdir) -> base64 content
    workdir: NonEmptyStr | None = None
    timeout_ms: NonNegativeInt | None = None
    max_output_bytes: PositiveInt | None = None


class RunAnswer(msgspec.Struct, rename="camel", omit_defaults=True):
    exit_code: int | None
    stdout: str
    stderr: str
    elapsed_ms: int
    timed_out: bool
    truncated: bool
    pooled: bool
    node: str | None = None  # cluster mode: the Swarm node the run ran on


class TestBody(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    image: NonEmptyStr
    patch_tar_base64: str
    test_cmd: NonEmptyStr | None = None
    timeout_ms: NonNegativeInt | None = None
    workdir: NonEmptyStr | None = None
    remove_paths: list[str] | None = None


class TestAnswer(msgspec.Struct, rename="camel", omit_defaults=True):
    exit_code: int | None
    test_output: str
    elapsed_ms: int
    timed_out: bool
    truncated: bool
    pooled: bool
    node: str | None = None  # cluster mode: the Swarm node the run ran on


def _max_output(runtime: Runtime, asked: int | None) -> int:
    ceiling = runtime.settings.max_output_bytes
    if asked is not None and asked > ceiling:
        raise validation_error("maxOutputBytes", f"must be at most {ceiling}")
    return asked or ceiling


@post("/v1/run", status_code=200, responses=errors(504))
async def run_once(data: JSONBody[RunBody], request: Request[Any, Any, Any], runtime: RuntimeDep) -> RunAnswer:
    note(request.scope, image=data.image)
    stdin = None if data.stdin is None else _b64("stdin", data.stdin)
    files = {path: _b64(f"files.{path}", content) for path, content in (data.files or {}).items()}
    workdir = data.workdir or "/"
    max_output = _max_output(runtime, data.max_output_bytes)
    with patch_refusals():
        tar = tar_of_files(files, "files", root=workdir) if files else None  # closed below, whatever happens
    where = await placed_run(runtime, request, data.image, data.timeout_ms or 0)
    if where is not None and not isinstance(where, Given):
        return msgspec.convert(where, RunAnswer)  # another node's runner ran it
    # a Swarm-placed container's stdin does not end with the attach: the input travels in the script
    script, token = bootstrap.script_for(data.command, data.workdir, stdin, inline=where is not None)

    async def prepare(container_id: str) -> None:
        note(request.scope, containerId=container_id)
        if tar is not None:
            await put_tar(runtime.engine, container_id, tar)

    run = OneUseRun(
        "run", data.image, script, token, None if where else stdin, data.timeout_ms or 0, max_output, prepare, where
    )
    try:
        result, pooled = await run_one_use(
            runtime.runs, runtime.metrics, run, watch_disconnect(request.receive), runtime.draining
        )
    finally:
        if tar is not None:
            tar.close()
    return RunAnswer(
        exit_code=result.exit_code,
        stdout=result.stdout,
        stderr=result.stderr,
        elapsed_ms=result.elapsed_ms,
        timed_out=result.timed_out,
        truncated=result.truncated,
        pooled=pooled,
        node=await _node(runtime),
    )


async def _node(runtime: Runtime) -> str | None:
    return None if runtime.cluster is None else (await runtime.cluster.local()).node_id


async def _run_test(
    runtime: Runtime, request: Request[Any, Any, Any], body: TestBody, patch: IO[bytes], field: str
) -> TestAnswer:
    note(request.scope, image=body.image)
    workdir = body.workdir or DEFAULT_WORKDIR
    with patch_refusals():
        removals = checked_removals("removePaths", body.remove_paths or [])
    limit = runtime.settings.max_patch_bytes
    with patch_refusals():
        rooted = await runtime.engine.run_blocking(lambda: rewrite_patch(patch, workdir, field, limit))
    timeout_ms = DEFAULT_TEST_TIMEOUT_MS if body.timeout_ms is None else body.timeout_ms
    where = await placed_run(runtime, request, body.image, timeout_ms)
    if where is not None and not isinstance(where, Given):
        rooted.close()
        return msgspec.convert(where, TestAnswer)  # another node's runner ran it
    script, token = bootstrap.script_for(body.test_cmd or runtime.settings.test_cmd, None, inline=where is not None)

    async def prepare(container_id: str) -> None:
        note(request.scope, containerId=container_id)
        if removals:
            await remove_paths(runtime.engine, container_id, workdir, removals)
        await put_tar(runtime.engine, container_id, rooted)

    max_output = runtime.settings.max_output_bytes
    run = OneUseRun("test", body.image, script, token, None, timeout_ms, max_output, prepare, where)
    try:
        result, pooled = await run_one_use(
            runtime.runs, runtime.metrics, run, watch_disconnect(request.receive), runtime.draining
        )
    finally:
        rooted.close()
    return TestAnswer(
        exit_code=result.exit_code,
        test_output=result.stdout + result.stderr,
        elapsed_ms=result.elapsed_ms,
        timed_out=result.timed_out,
        truncated=result.truncated,
        pooled=pooled,
        node=await _node(runtime),
    )


@post("/v1/test", status_code=200, responses=errors())
async def test_from_json(data: JSONBody[TestBody], request: Request[Any, Any, Any], runtime: RuntimeDep) -> TestAnswer:
    patch = io.BytesIO(_b64("patchTarBase64", data.patch_tar_base64))
    return await _run_test(runtime, request, data, patch, "patchTarBase64")


OptionalQuery = Annotated[str | None, QueryParameter()]


@put(
    "/v1/test",
    status_code=200,
    opt={STREAMED_BODY: True},
    request_max_body_size=None,
    responses=errors(),
    operation_class=TarUpload,
)
async def test_from_tar(
    request: Request[Any, Any, Any],
    runtime: RuntimeDep,
    image: Annotated[str, QueryParameter(min_length=1)],
    test_cmd: Annotated[str | None, QueryParameter(name="testCmd")] = None,
    timeout_ms: Annotated[int | None, QueryParameter(name="timeoutMs", ge=0)] = None,
    workdir: OptionalQuery = None,
    remove_paths: Annotated[str | None, QueryParameter(name="removePaths")] = None,
) -> TestAnswer:
    """The patch is the raw tar body, streamed; the rest is in the (signed) query: headers are not signed."""
    removals: list[str] = []
    if remove_paths:
        try:
            removals = json.loads(remove_paths)
        except ValueError:
            raise validation_error("removePaths", "must be a JSON array of relative paths") from None
        if not isinstance(removals, list) or not all(isinstance(path, str) for path in removals):
            raise validation_error("removePaths", "must be a JSON array of relative paths")
    body = TestBody(image, "", test_cmd or None, timeout_ms, workdir or None, removals)
    return await _run_test(runtime, request, body, spooled_body(request.scope), "body")


class PoolsAnswer(msgspec.Struct):
    pools: list[dict[str, Any]]


@get("/v1/pools", responses=errors())
async def pool_stats(runtime: RuntimeDep) -> PoolsAnswer:
    return PoolsAnswer(runtime.pools.stats())


ROUTES = [run_once, test_from_json, test_from_tar, pool_stats]
