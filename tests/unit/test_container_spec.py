"""The engine create body built from ContainerOpts (pure)."""

from __future__ import annotations

import msgspec
import pytest

from docker_runner.containers.spec import INSTANCE_LABEL, MANAGED_LABEL, TTL_LABEL, ContainerOpts, build_create_body


def _opts(**fields: object) -> ContainerOpts:
    return msgspec.convert({"image": "img", **fields}, ContainerOpts)


def test_minimal_body() -> None:
    body = build_create_body(_opts(), "i")
    assert body == {
        "Image": "img",
        "Tty": False,
        "Labels": {MANAGED_LABEL: "true", INSTANCE_LABEL: "i"},
        "HostConfig": {"AutoRemove": True, "Init": True},
    }


def test_every_option() -> None:
    body = build_create_body(
        _opts(
            cmd=["a", "b"],
            entrypoint="/bin/sh",
            env={"K": "V"},
            workingDir="/w",
            autoRemove=False,
            binds=["/h:/c:ro"],
            networkMode="none",
            tty=True,
            labels={"x": "y"},
            privileged=False,
            anonymousVolumes=["/data"],
            ttlSeconds=30,
            resources={"memoryBytes": 64 << 20, "nanoCpus": 500_000_000, "pidsLimit": 64, "gpus": ["0", "1"]},
        ),
        "i",
    )
    assert body["Cmd"] == ["a", "b"] and body["Entrypoint"] == ["/bin/sh"] and body["Env"] == ["K=V"]
    assert body["WorkingDir"] == "/w" and body["Tty"] is True and body["Volumes"] == {"/data": {}}
    assert body["Labels"] == {"x": "y", MANAGED_LABEL: "true", INSTANCE_LABEL: "i", TTL_LABEL: "30"}
    host = body["HostConfig"]
    assert host["AutoRemove"] is False and host["Binds"] == ["/h:/c:ro"] and host["NetworkMode"] == "none"
    assert (host["Memory"], host["NanoCpus"], host["PidsLimit"]) == (64 << 20, 500_000_000, 64)
    assert host["DeviceRequests"] == [{"Driver": "", "Count": 0, "DeviceIDs": ["0", "1"], "Capabilities": [["gpu"]]}]


def test_all_gpus() -> None:
    host = build_create_body(_opts(resources={"gpus": "all"}), "i")["HostConfig"]
    assert host["DeviceRequests"][0]["Count"] == -1


def test_create_extras_merge_last_and_host_config_shallowly() -> None:
    body = build_create_body(
        _opts(
            cmd=["x"],
            labels={"a": "1"},
            createExtras={"Cmd": ["y"], "HostConfig": {"ShmSize": 1024}, "Labels": {"b": "2", MANAGED_LABEL: "no"}},
        ),
        "i",
    )
    assert body["Cmd"] == ["y"]
    assert body["HostConfig"] == {"AutoRemove": True, "Init": True, "ShmSize": 1024}
    assert body["Labels"] == {"b": "2", MANAGED_LABEL: "true", INSTANCE_LABEL: "i"}


@pytest.mark.parametrize(
    "fields",
    [{"unknown": 1}, {"ttlSeconds": 0}, {"resources": {"memoryBytes": -1}}, {"env": 5}, {"image": ""}],
)
def test_invalid_options(fields: dict[str, object]) -> None:
    with pytest.raises(msgspec.ValidationError):
        _opts(**fields)
