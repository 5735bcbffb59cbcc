"""Images: pull only what is missing."""

from __future__ import annotations

import re
from typing import Any

from ..engine.core import APIClient, Engine, image_present
from ..errors import from_engine, validation_error

# one path component of an image reference (registry[:port], repository parts, :tag, @digest): a
# component such as "." or ".." would be spliced into the engine's URL path and reach another route
_COMPONENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@+-]*$")


def check_reference(field: str, image: str) -> str:
    if not all(_COMPONENT.match(part) for part in image.split("/")):
        raise validation_error(field, "is not an image reference (registry/repository:tag or @digest)")
    return image


def _pull_error(progress: Any) -> str | None:
    if isinstance(progress, dict) and progress.get("error"):
        return str(progress["error"])
    return None


def _pull(api: APIClient, image: str, platform: str | None) -> None:
    # the engine reports a failed pull inside a 200 stream, so each progress line is checked
    for progress in api.pull(image, platform=platform, stream=True, decode=True):
        message = _pull_error(progress)
        if message is not None:
            lowered = message.lower()
            status = 404 if "not found" in lowered or "denied" in lowered else 500
            raise from_engine(status, message)


async def ensure(engine: Engine, image: str, platform: str | None) -> None:
    """Pull ``image`` when it is absent, or always when a platform is named."""
    check_reference("image", image)

    def ensure_blocking(api: APIClient) -> None:
        if platform is None and image_present(api, image):
            return
        _pull(api, image, platform)

    await engine.run_stream(ensure_blocking)
