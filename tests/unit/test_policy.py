"""The create policy against the final engine body, through every spelling that reaches the engine."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest

from docker_runner.container_spec import ContainerOpts, build_create_body
from docker_runner.errors import ApiError
from docker_runner.policy import (
    Allow,
    BindRule,
    Ceiling,
    CreateChecker,
    Limits,
    Override,
    Policy,
    PolicyError,
    load_policy,
)

KELVIN = "\u212a"
LONG_S = "\u017f"


def _body(opts_json: bytes | dict[str, Any]) -> dict[str, Any]:
    """The create body exactly as the route builds it from the request's JSON bytes."""
    raw = opts_json if isinstance(opts_json, bytes) else msgspec.json.encode({"image": "img", **opts_json})
    return build_create_body(msgspec.json.decode(raw, type=ContainerOpts), "test")


def _check(opts_json: bytes | dict[str, Any], policy: Policy | None = None) -> dict[str, Any]:
    return CreateChecker(policy or Policy()).check(_body(opts_json))


def _denied(opts_json: bytes | dict[str, Any], policy: Policy | None = None) -> ApiError:
    with pytest.raises(ApiError) as caught:
        _check(opts_json, policy)
    assert (caught.value.status, caught.value.code) == (403, "policy_denied"), caught.value.message
    return caught.value


def _extras(field: str, value: Any, host_key: str = "HostConfig") -> dict[str, Any]:
    return {"createExtras": {host_key: {field: value}}}


HOST_KEYS = ["HostConfig", "hostconfig", "HOSTCONFIG", "hostConfig"]


@pytest.mark.parametrize("host_key", HOST_KEYS)
@pytest.mark.parametrize("field", ["Privileged", "privileged", "PRIVILEGED", "pRiViLeGeD"])
def test_privileged_in_every_spelling(host_key: str, field: str) -> None:
    error = _denied(_extras(field, True, host_key))
    assert error.details == {"field": "HostConfig.Privileged", "rule": "privileged"}
    assert "HostConfig.Privileged" in error.message and "privileged" in error.message


def test_privileged_option_and_truthy_values() -> None:
    _denied({"privileged": True})
    for value in (1, "true", "false", [True]):
        _denied(_extras("Privileged", value))
    _check({"privileged": False})
    _check(_extras("Privileged", False))


def test_json_escapes_and_duplicate_keys_cannot_hide_a_field() -> None:
    """\\u0048ostConfig is HostConfig; of duplicate keys the engine reads what we check."""
    _denied(b'{"image":"i","createExtras":{"\\u0048ostConfig":{"\\u0050rivileged":true}}}')
    _denied(b'{"image":"i","createExtras":{"HostConfig":{},"HostConfig":{"Privileged":true}}}')
    _denied(b'{"image":"i","createExtras":{"HostConfig":{"Privileged":true},"hostconfig":{}}}')
    _denied(b'{"image":"i","createExtras":{"HostConfig":{"Privileged":false,"privileged":true}}}')
    body = _check(b'{"image":"i","createExtras":{"HostConfig":{"Privileged":true},"HostConfig":{}}}')
    assert "Privileged" not in body["HostConfig"]  # the engine gets exactly the checked body


def test_go_folding_of_kelvin_and_long_s() -> None:
    """The engine folds the Kelvin sign to k and the long s to s: so does the check."""
    _denied(_extras(f"Networ{KELVIN}Mode", "host"))
    _denied(_extras(f"Bind{LONG_S}", ["/etc:/x"]))
    _denied(_extras(f"{LONG_S}ecurityOpt", ["seccomp=unconfined"], host_key=f"Ho{LONG_S}tConfig"))


def test_unknown_engine_fields_are_refused() -> None:
    with pytest.raises(ApiError) as caught:
        _check(_extras("Privileged\u0131", True))
    assert caught.value.status == 400 and "Privileged\u0131" in caught.value.message


@pytest.mark.parametrize(
    "bind",
    ["/etc:/x", "/:/host", "/srv/work/../../etc:/x", "/var/run/docker.sock:/s", "/run:/r", "/var:/v", "/var/run:/v"],
)
def test_host_path_binds_denied(bind: str) -> None:
    error = _denied({"binds": [bind]})
    assert error.details["rule"] == "binds" and error.details["field"] == "HostConfig.Binds[0]"


def test_named_volumes_and_tmpfs_are_fine() -> None:
    _check({"binds": ["data:/data", "cache:/cache:ro"], "createExtras": {"HostConfig": {"Tmpfs": {"/t": ""}}}})
    _check({"createExtras": {"HostConfig": {"Mounts": [{"Type": "tmpfs", "Target": "/t"}]}}})


def test_mounts_are_checked_like_binds() -> None:
    _denied({"createExtras": {"HostConfig": {"Mounts": [{"Type": "bind", "Source": "/etc", "Target": "/x"}]}}})
    _denied({"createExtras": {"hostconfig": {"mounts": [{"type": "bind", "source": "/etc", "target": "/x"}]}}})
    driver = {"Name": "local", "Options": {"type": "none", "o": "bind", "device": "/"}}
    volume = {"Type": "volume", "Source": "v", "Target": "/x", "VolumeOptions": {"DriverConfig": driver}}
    _denied({"createExtras": {"HostConfig": {"Mounts": [volume]}}})
    _denied(_extras("VolumeDriver", "sshfs"))


def test_bind_rules_allow_per_prefix_and_read_only() -> None:
    policy = Policy(allow=Allow(binds=[BindRule("/srv/work"), BindRule("/srv/ref", read_only=True)]))
    _check({"binds": ["/srv/work/a:/a", "/srv/work:/w", "/srv/ref/x:/r:ro"]}, policy)
    _check(
        {
            "createExtras": {
                "HostConfig": {"Mounts": [{"Type": "bind", "Source": "/srv/ref", "Target": "/r", "ReadOnly": True}]}
            }
        },
        policy,
    )
    _denied({"binds": ["/srv/workspace:/a"]}, policy)  # a sibling sharing the prefix's letters
    _denied({"binds": ["/srv/ref/x:/r"]}, policy)
    _denied({"binds": ["/srv/work/../ref:/r"]}, policy)


def test_engine_socket_only_when_named_exactly() -> None:
    broad = Policy(allow=Allow(binds=[BindRule("/var")]))
    _denied({"binds": ["/var/run/docker.sock:/s"]}, broad)
    _denied({"binds": ["/var/run:/s"]}, broad)
    _check({"binds": ["/var/lib/data:/d"]}, broad)
    exact = Policy(allow=Allow(binds=[BindRule("/var/run/docker.sock")]))
    _check({"binds": ["/var/run/docker.sock:/var/run/docker.sock"]}, exact)


@pytest.mark.parametrize(
    ("field", "mode", "namespace"),
    [
        ("NetworkMode", "host", "network"),
        ("PidMode", "host", "pid"),
        ("IpcMode", "host", "ipc"),
        ("UTSMode", "host", "uts"),
        ("UsernsMode", "host", "userns"),
        ("CgroupnsMode", "host", "cgroup"),
        ("NetworkMode", "HOST", "network"),
    ],
)
def test_host_namespaces(field: str, mode: str, namespace: str) -> None:
    error = _denied(_extras(field, mode))
    assert error.details == {"field": f"HostConfig.{field}", "rule": "hostNamespaces"}
    _check(_extras(field, mode), Policy(allow=Allow(host_namespaces=[namespace])))  # type: ignore[list-item]


def test_network_mode_option_and_container_namespaces() -> None:
    _denied({"networkMode": "host"})
    _check({"networkMode": "none"})
    _denied({"networkMode": "container:abc"})
    _denied(_extras("PidMode", "container:abc"))
    _check({"networkMode": "container:abc"}, Policy(allow=Allow(container_namespaces=True)))


def test_capabilities() -> None:
    for name in ("SYS_ADMIN", "cap_sys_admin", "ALL", "Net_Admin"):
        assert _denied(_extras("CapAdd", [name])).details["rule"] == "capAdd"
    policy = Policy(allow=Allow(cap_add=["NET_ADMIN"]))
    _check(_extras("CapAdd", ["NET_ADMIN", "cap_net_admin"]), policy)
    _denied(_extras("CapAdd", ["NET_ADMIN", "SYS_ADMIN"]), policy)
    _check(_extras("CapDrop", ["ALL"]))


@pytest.mark.parametrize(
    ("field", "value", "rule", "allow"),
    [
        (
            "Devices",
            [{"PathOnHost": "/dev/sda", "PathInContainer": "/dev/sda", "CgroupPermissions": "rwm"}],
            "devices",
            Allow(devices=True),
        ),
        ("DeviceCgroupRules", ["b 8:* rmw"], "devices", Allow(devices=True)),
        ("VolumesFrom", ["other"], "volumesFrom", Allow(volumes_from=True)),
        ("CgroupParent", "/", "cgroupParent", Allow(cgroup_parent=True)),
        ("MaskedPaths", [], "unmaskedPaths", Allow(unmasked_paths=True)),
        ("ReadonlyPaths", [], "unmaskedPaths", Allow(unmasked_paths=True)),
        ("Sysctls", {"kernel.shmmax": "1"}, "sysctls", Allow(sysctls=["kernel.*"])),
        ("DeviceRequests", [{"Count": -1, "Capabilities": [["gpu"]]}], "gpus", Allow(gpus=True)),
    ],
)
def test_switches_denied_then_allowed(field: str, value: Any, rule: str, allow: Allow) -> None:
    assert _denied(_extras(field, value)).details["rule"] == rule
    _check(_extras(field, value), Policy(allow=allow))


def test_gpus_through_resources() -> None:
    _denied({"resources": {"gpus": "all"}})
    _check({"resources": {"gpus": ["0"]}}, Policy(allow=Allow(gpus=True)))


@pytest.mark.parametrize(
    "option",
    [
        "seccomp=unconfined",
        "seccomp:unconfined",
        "seccomp={}",
        "apparmor=unconfined",
        "apparmor:unconfined",
        "no-new-privileges=false",
        "no-new-privileges:false",
        "label=disable",
        "label:disable",
        "systempaths=unconfined",
    ],
)
def test_weakening_security_options(option: str) -> None:
    assert _denied(_extras("SecurityOpt", [option])).details["rule"] == "weakerSecurityOpt"
    _check(_extras("SecurityOpt", [option]), Policy(allow=Allow(weaker_security_opt=True)))


def test_harmless_security_options() -> None:
    _check(_extras("SecurityOpt", ["no-new-privileges", "no-new-privileges=true", "label=level:s0:c100"]))


SMALL = Limits(
    memory_bytes=Ceiling(64 << 20, 128 << 20),
    nano_cpus=Ceiling(500_000_000, 1_000_000_000),
    pids_limit=Ceiling(32, 64),
    log_max_size_bytes=Ceiling(1 << 20, 2 << 20),
    log_max_files=Ceiling(2, 3),
)


def test_ceilings_applied_by_default() -> None:
    host = _check({}, Policy(limits=SMALL))["HostConfig"]
    assert (host["Memory"], host["NanoCpus"], host["PidsLimit"]) == (64 << 20, 500_000_000, 32)
    assert host["LogConfig"] == {"Type": "json-file", "Config": {"max-size": str(1 << 20), "max-file": "2"}}


def test_ceilings_kept_when_within() -> None:
    resources = {"memoryBytes": 100 << 20, "nanoCpus": 1_000_000_000, "pidsLimit": 64}
    host = _check({"resources": resources}, Policy(limits=SMALL))["HostConfig"]
    assert (host["Memory"], host["NanoCpus"], host["PidsLimit"]) == (100 << 20, 1_000_000_000, 64)


@pytest.mark.parametrize(
    ("opts", "field"),
    [
        ({"resources": {"memoryBytes": 256 << 20}}, "HostConfig.Memory"),
        ({"resources": {"nanoCpus": 2_000_000_000}}, "HostConfig.NanoCpus"),
        ({"resources": {"pidsLimit": 65}}, "HostConfig.PidsLimit"),
        ({"resources": {"pidsLimit": -1}}, "HostConfig.PidsLimit"),
        ({"createExtras": {"HostConfig": {"PidsLimit": 0}}}, "HostConfig.PidsLimit"),
        ({"createExtras": {"HostConfig": {"CpuQuota": 400_000, "CpuPeriod": 100_000}}}, "HostConfig.CpuQuota"),
        (
            {"createExtras": {"HostConfig": {"LogConfig": {"Type": "json-file", "Config": {"max-size": "1g"}}}}},
            "HostConfig.LogConfig.Config.max-size",
        ),
        (
            {"createExtras": {"HostConfig": {"LogConfig": {"Config": {"max-file": "100"}}}}},
            "HostConfig.LogConfig.Config.max-file",
        ),
        ({"createExtras": {"HostConfig": {"LogConfig": {"Type": "syslog"}}}}, "HostConfig.LogConfig.Type"),
    ],
)
def test_ceilings_cannot_be_exceeded(opts: dict[str, Any], field: str) -> None:
    assert _denied(opts, Policy(limits=SMALL)).details["field"] == field


def test_image_allow_list() -> None:
    policy = Policy(images=["runner-test/*", "python:3.*"])
    _check({"image": "runner-test/busybox:latest"}, policy)
    _check({"image": "runner-test/busybox"}, policy)
    _check({"image": "python:3.12-slim"}, policy)
    error = _denied({"image": "evil/miner"}, policy)
    assert error.details == {"field": "Image", "rule": "images"}


def test_overrides_apply_per_image() -> None:
    """The ready profile's pattern: privileged only for a Docker-in-Docker image."""
    policy = Policy(overrides=[Override(images=["docker:*dind*"], allow=Allow(privileged=True))])
    _check({"image": "docker:27-dind", "privileged": True}, policy)
    _denied({"image": "busybox", "privileged": True}, policy)


POLICIES = Path(__file__).resolve().parents[2] / "policies"


def test_default_policy_file_is_the_built_in_default() -> None:
    """policies/default.yaml documents exactly what an absent DOCKER_RUNNER_POLICY enforces."""
    assert msgspec.to_builtins(load_policy(POLICIES / "default.yaml")) == msgspec.to_builtins(Policy())
    assert load_policy(None) == Policy()


def test_platform_profile_loads() -> None:
    profile = load_policy(POLICIES / "platform.yaml")
    _check({"image": "docker:27-dind", "privileged": True, "binds": ["/srv/workspaces/w1:/w"]}, profile)
    _denied({"image": "busybox", "privileged": True}, profile)
    _check({"binds": ["/srv/shared/toolchains/go:/go:ro"]}, profile)
    _denied({"binds": ["/srv/shared/toolchains/go:/go"]}, profile)


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("allow: {privileged: yes please}", "privileged"),
        ("images: 3", "images"),
        ("bogus: 1", "bogus"),
        ("[", "cannot read"),
    ],
)
def test_bad_policy_files_say_what_is_wrong(tmp_path: Path, text: str, named: str) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    with pytest.raises(PolicyError, match=named) as caught:
        load_policy(path)
    assert "DOCKER_RUNNER_POLICY" in str(caught.value)
