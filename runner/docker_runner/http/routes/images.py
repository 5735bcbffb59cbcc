"""Images and volumes."""

from __future__ import annotations

import msgspec
from litestar import post
from litestar.params import JSONBody
from litestar.types import Scope

from ...containers import images, lifecycle
from ...containers.spec import NonEmptyStr
from ...policy.checker import check_image
from ..dependencies import RuntimeDep
from ..forwarding import EVERYWHERE
from ..observe import note
from ..openapi import errors


class EnsureImageBody(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    image: NonEmptyStr
    platform: NonEmptyStr | None = None


class RemoveVolumeBody(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    volume_name: NonEmptyStr
    force: bool = False


@post("/v1/images/ensure", status_code=204, responses=errors(), opt={EVERYWHERE: True})
async def ensure_image(data: JSONBody[EnsureImageBody], scope: Scope, runtime: RuntimeDep) -> None:
    note(scope, image=data.image)
    check_image(runtime.policy, data.image)
    await images.ensure(runtime.engine, data.image, data.platform)


@post("/v1/volumes/remove", status_code=204, responses=errors())
async def remove_volume(data: JSONBody[RemoveVolumeBody], runtime: RuntimeDep) -> None:
    await lifecycle.remove_volume(runtime.engine, runtime.managed, data.volume_name, data.force)


ROUTES = [ensure_image, remove_volume]
