"""``GET /ui/terminal`` and its assets [ext]: the browser terminal (client/web), when DOCKER_RUNNER_UI=true.

Static files only, and open: the page holds no secret, it reads its ticketed WebSocket URL from
its own fragment. The bundle is built outside the runner (``make web``) and read from disk on each
request, so a bundle built after the runner started is served without a restart.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

from litestar import Response, get
from litestar.params import Parameter

from ...errors import ApiError, Kind
from ...settings import Settings
from ..dependencies import RuntimeDep
from ..middleware import OPEN_ROUTE

PAGE = "/ui/terminal"
INDEX = "index.html"
# runner/docker_runner/routes/ui.py -> the checkout's client/web/dist (an editable install, `make run`)
CHECKOUT_BUNDLE = Path(__file__).resolve().parents[4] / "client" / "web" / "dist"
_ASSET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_MEDIA_TYPES = {
    ".html": "text/html",
    ".js": "text/javascript",
    ".css": "text/css",
    ".map": "application/json",
    ".txt": "text/plain",
}
_COMMON_HEADERS = {"cache-control": "no-cache", "x-content-type-options": "nosniff"}
# The page talks to its own runner only; xterm.js styles its DOM renderer inline.
_PAGE_HEADERS = {
    **_COMMON_HEADERS,
    "content-security-policy": "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "connect-src 'self'; img-src 'self' data:; font-src 'self' data:; base-uri 'none'; form-action 'none'",
    "referrer-policy": "no-referrer",
}


def bundle_dir(settings: Settings) -> Path:
    return settings.ui_dir or CHECKOUT_BUNDLE


def _not_built(directory: Path) -> ApiError:
    return ApiError(
        Kind.NOT_FOUND,
        "ui_not_built",
        f"The browser terminal is not built (no {directory / INDEX}): run `make web` in the repository "
        "(npm ci && npm run build in client/web), or point DOCKER_RUNNER_UI_DIR at a built bundle",
    )


def _file(settings: Settings, name: str, headers: dict[str, str]) -> Response[bytes]:
    directory = bundle_dir(settings)
    if not (directory / INDEX).is_file():
        raise _not_built(directory)
    path = directory / name
    if not _ASSET_NAME.match(name) or not path.is_file():
        raise ApiError(Kind.NOT_FOUND, "not_found", f"No such file in the browser terminal: {name}")
    media_type = _MEDIA_TYPES.get(path.suffix, "application/octet-stream")
    return Response(path.read_bytes(), media_type=media_type, headers=headers)


@get(PAGE, opt={OPEN_ROUTE: True}, include_in_schema=False, sync_to_thread=True)
def terminal_page(runtime: RuntimeDep) -> Response[bytes]:
    return _file(runtime.settings, INDEX, _PAGE_HEADERS)


@get(PAGE + "/{name:str}", opt={OPEN_ROUTE: True}, include_in_schema=False, sync_to_thread=True)
def terminal_asset(name: Annotated[str, Parameter()], runtime: RuntimeDep) -> Response[bytes]:
    return _file(runtime.settings, name, _PAGE_HEADERS if name == INDEX else _COMMON_HEADERS)


ROUTES = [terminal_page, terminal_asset]
