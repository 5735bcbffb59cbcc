"""Tar archives into and out of containers: base64 JSON (agyn compatible) and streamed raw tar."""

from __future__ import annotations

import base64
import binascii
from collections.abc import AsyncIterator
from typing import Annotated, Any

import msgspec
from litestar import Request, get, post, put
from litestar.params import JSONBody, PathParameter, QueryParameter
from litestar.response import Stream
from litestar.types import Scope

from ...containers.spec import NonEmptyStr
from ...engine import archives
from ...errors import validation_error
from ..dependencies import RuntimeDep
from ..forwarding import LOCATED_BY
from ..middleware import STREAMED_BODY, spooled_body
from ..observe import at_request_end, note
from ..openapi import TarDownload, TarUpload, errors

PathQuery = Annotated[str, QueryParameter(name="path", min_length=1)]


class PutArchiveBody(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    container_id: NonEmptyStr
    path: NonEmptyStr
    payload_base64: str


@post("/v1/containers/putArchive", status_code=204, responses=errors(), opt={LOCATED_BY: ("body", "containerId")})
async def put_archive_json(data: JSONBody[PutArchiveBody], scope: Scope, runtime: RuntimeDep) -> None:
    note(scope, containerId=data.container_id)
    try:
        payload = base64.b64decode(data.payload_base64, validate=True)
    except (binascii.Error, ValueError):
        raise validation_error("payloadBase64", "is not valid base64") from None
    container_id = await runtime.managed.container(data.container_id)
    await archives.put(runtime.engine, container_id, data.path, payload)


@put(
    "/v1/containers/{container_id:str}/archive",
    status_code=204,
    opt={STREAMED_BODY: True, LOCATED_BY: ("path", "container_id")},
    request_max_body_size=None,
    responses=errors(),
    operation_class=TarUpload,
)
async def put_archive_raw(
    container_id: Annotated[str, PathParameter()],
    path: PathQuery,
    request: Request[Any, Any, Any],
    runtime: RuntimeDep,
) -> None:
    note(request.scope, containerId=container_id)
    container_id = await runtime.managed.container(container_id)
    await archives.put(runtime.engine, container_id, path, spooled_body(request.scope))


@get(
    "/v1/containers/{container_id:str}/archive",
    responses=errors(),
    operation_class=TarDownload,
    opt={LOCATED_BY: ("path", "container_id")},
)
async def get_archive_raw(
    container_id: Annotated[str, PathParameter()], path: PathQuery, scope: Scope, runtime: RuntimeDep
) -> Stream:
    note(scope, containerId=container_id)
    container_id = await runtime.managed.container(container_id)
    archive = await archives.open_archive(runtime.engine, container_id, path)
    at_request_end(scope, archive.aclose)

    async def body() -> AsyncIterator[bytes]:
        async with archive:
            async for chunk in archive:
                yield chunk

    headers = {"content-type": "application/x-tar"}
    if archive.stat_header:
        headers[archives.STAT_HEADER] = archive.stat_header
    return Stream(body(), headers=headers, media_type="application/x-tar")


ROUTES = [put_archive_json, put_archive_raw, get_archive_raw]
