"""What the reaper knows about each container's TTL, as GET /v1/containers answers it (pure)."""

from __future__ import annotations

from typing import Any

from docker_runner.containers.reaper import TouchLog, expired_ids, listed_container, seconds_left
from docker_runner.containers.spec import INSTANCE_LABEL, TTL_LABEL


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _item(container_id: str, created: int, **labels: str) -> dict[str, Any]:
    return {
        "Id": container_id,
        "Names": [f"/{container_id}-name"],
        "Image": "busybox",
        "State": "running",
        "Created": created,
        "Labels": labels,
    }


def test_seconds_left_counts_from_the_last_touch() -> None:
    """Left = TTL - (now - last use); last use is the touch, else max(runner start, creation)."""
    clock = Clock(1000.0)
    touches = TouchLog(clock)
    item = _item("a", 900, **{TTL_LABEL: "60"})
    clock.now = 1010.0
    assert seconds_left(item, touches) == 50.0  # runner start (1000) is later than the creation
    touches.touch("a")
    clock.now = 1070.5
    assert seconds_left(item, touches) == -0.5
    assert expired_ids([item], touches) == ["a"]
    assert seconds_left(_item("b", 900), touches) is None
    assert seconds_left(_item("c", 900, **{TTL_LABEL: "soon"}), touches) is None


def test_listed_container_rounds_up_and_never_goes_negative() -> None:
    """A fresh 600 s TTL shows 600, a due one 0; another instance's container has no TTL left."""
    clock = Clock(2000.0)
    touches = TouchLog(clock)
    mine = _item("m", 1990, **{TTL_LABEL: "600", INSTANCE_LABEL: "me"})
    touches.touch("m")
    clock.now = 2000.25
    listed = listed_container(mine, touches, "me")
    assert (listed.name, listed.image, listed.status, listed.created_at) == ("m-name", "busybox", "running", 1990_000)
    assert (listed.ttl_seconds, listed.ttl_left_seconds) == (600, 600)
    clock.now = 9999.0
    assert listed_container(mine, touches, "me").ttl_left_seconds == 0
    theirs = listed_container(mine, touches, "someone-else")
    assert (theirs.ttl_seconds, theirs.ttl_left_seconds) == (600, None)
    bare = listed_container({"Id": "x"}, touches, "me")
    assert (bare.name, bare.labels, bare.ttl_seconds, bare.ttl_left_seconds) == ("", {}, None, None)
