"""Images: pull only what is missing."""

from __future__ import annotations

from typing import Any

from .engine import APIClient, Engine, image_present
from .errors import from_engine


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

    def ensure_blocking(api: APIClient) -> None:
        if platform is None and image_present(api, image):
            return
        _pull(api, image, platform)

    await engine.run_stream(ensure_blocking)
