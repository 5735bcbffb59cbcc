"""The create policy against the final engine body, through every spelling that reaches the engine."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import msgspec
import pytest

from docker_runner.containers.spec import ContainerOpts, build_create_body
from docker_runner.errors import ApiError
from docker_runner.policy.checker import (
    Allow,
    BindRule,
    Ceiling,
    CreateChecker,
    Limits,
    Override,
    Policy,
    PolicyError,
    container_references,
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


def _invalid(opts_json: bytes | dict[str, Any], policy: Policy | None = None) -> str:
    """The field a 400 validation_error names."""
    with pytest.raises(ApiError) as caught:
        _check(opts_json, policy)
    assert (caught.value.status, caught.value.code) == (400, "validation_error"), caught.value.message
    field: str = caught.value.details["field"]
    assert caught.value.message.startswith(field + ":")
    return field


def _extras(field: str, value: Any, host_key: str = "HostConfig") -> dict[str, Any]:
    return {"createExtras": {host_key: {field: value}}}


HOST_KEYS = ["HostConfig", "hostconfig", "HOSTCONFIG", "hostConfig"]


@pytest.mark.parametrize("host_key", HOST_KEYS)
@pytest.mark.parametrize("field", ["Privileged", "privileged", "PRIVILEGED", "pRiViLeGeD"])
def test_privileged_in_every_spelling(host_key: str, field: str) -> None:
    error = _denied(_extras(field, True, host_key))
    assert error.details == {"field": "HostConfig.Privileged", "rule": "privileged"}
    assert "HostConfig.Privileged" in error.message and "privileged" in error.message


def test_privileged_option_and_values_of_other_types() -> None:
    """True is denied; a value the engine would not read as a bool is a 400, never a guess."""
    _denied({"privileged": True})
    for value in (1, "true", "false", [True]):
        assert _invalid(_extras("Privileged", value)) == "HostConfig.Privileged"
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


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """ws/ (workspaces: a/, a/evil -> /, link -> /etc), ref/ (x/y, x/up -> /), var/run/docker.sock, alias -> var/run."""
    (tmp_path / "ws" / "a").mkdir(parents=True)
    (tmp_path / "ws" / "a" / "evil").symlink_to("/")
    (tmp_path / "ws" / "link").symlink_to("/etc")
    (tmp_path / "ref" / "x" / "y").mkdir(parents=True)
    (tmp_path / "ref" / "x" / "up").symlink_to("/")
    (tmp_path / "var" / "run").mkdir(parents=True)
    (tmp_path / "var" / "lib" / "data").mkdir(parents=True)
    (tmp_path / "var" / "run" / "docker.sock").touch()
    (tmp_path / "alias").symlink_to(tmp_path / "var" / "run")
    return tmp_path


def _binds_policy(*rules: BindRule) -> Policy:
    return Policy(allow=Allow(binds=list(rules)))


def _bind_refusal(bind: str, policy: Policy, sockets: tuple[str, ...] | None = None) -> str:
    checker = CreateChecker(policy) if sockets is None else CreateChecker(policy, sockets)
    with pytest.raises(ApiError) as caught:
        checker.check(_body({"binds": [bind]}))
    assert caught.value.code == "policy_denied"
    assert caught.value.details == {"field": "HostConfig.Binds[0]", "rule": "binds"}
    return caught.value.message


def test_bind_rules_allow_per_prefix_and_read_only(tree: Path) -> None:
    policy = _binds_policy(BindRule(f"{tree}/ws", depth=1), BindRule(f"{tree}/ref", read_only=True))
    _check({"binds": [f"{tree}/ws/a:/a", f"{tree}/ref/x/y:/r:ro", f"{tree}/ref:/r2:ro"]}, policy)
    mount = {"Type": "bind", "Source": f"{tree}/ref/x", "Target": "/r", "ReadOnly": True}
    _check({"createExtras": {"HostConfig": {"Mounts": [mount]}}}, policy)
    (tree / "wsx").mkdir()
    assert "host path bind mounts are denied" in _bind_refusal(f"{tree}/wsx:/a", policy)  # shares the letters
    assert "read-only" in _bind_refusal(f"{tree}/ref/x:/r", policy)
    assert "read-only" in _bind_refusal(f"{tree}/ref/x:/r:rw", policy)
    assert "'..'" in _bind_refusal(f"{tree}/ws/a/../../ref:/r", policy)
    assert "'..'" in _bind_refusal(f"{tree}/ws/a/..:/r", policy)


def test_a_symlink_planted_under_a_writable_prefix_does_not_reach_the_host(tree: Path) -> None:
    """The exploit of the audit: a container with ws/a writable plants evil -> /, then binds ws/a/evil."""
    any_depth = _binds_policy(BindRule(f"{tree}/ws", depth=2))
    assert "symbolic link" in _bind_refusal(f"{tree}/ws/a/evil:/host", any_depth)
    workspaces = _binds_policy(BindRule(f"{tree}/ws", depth=1))
    assert "exactly 1" in _bind_refusal(f"{tree}/ws/a/evil:/host", workspaces)
    assert "symbolic link" in _bind_refusal(f"{tree}/ws/link:/host", workspaces)  # a workspace that is a link
    read_only = _binds_policy(BindRule(f"{tree}/ref", read_only=True))
    assert "symbolic link" in _bind_refusal(f"{tree}/ref/x/up:/host:ro", read_only)
    assert "symbolic link" in _bind_refusal(f"{tree}/ref/x/up/etc:/host:ro", read_only)
    mount = {"Type": "bind", "Source": f"{tree}/ref/x/up", "Target": "/h", "ReadOnly": True}
    _denied({"createExtras": {"HostConfig": {"Mounts": [mount]}}}, read_only)


def test_writable_rules_fix_the_depth_of_their_sources(tree: Path) -> None:
    """Writable: depth 0 unless given (the source itself); depth 1: its children, not itself or deeper."""
    (tree / "ws" / "a" / "deep").mkdir()
    itself = _binds_policy(BindRule(f"{tree}/ws"))
    _check({"binds": [f"{tree}/ws:/w"]}, itself)
    assert "itself" in _bind_refusal(f"{tree}/ws/a:/w", itself)
    children = _binds_policy(BindRule(f"{tree}/ws", depth=1))
    _check({"binds": [f"{tree}/ws/a:/w", f"{tree}/ws/a/:/w2"]}, children)
    assert "exactly 1" in _bind_refusal(f"{tree}/ws:/w", children)
    assert "exactly 1" in _bind_refusal(f"{tree}/ws/a/deep:/w", children)


def test_bind_sources_the_runner_cannot_verify_are_refused(tree: Path) -> None:
    """A missing source (the engine would create it through any symlink) or a prefix the runner does
    not see is refused, telling the operator what to mount."""
    policy = _binds_policy(BindRule(f"{tree}/ws", depth=1), BindRule("/no/such/prefix", read_only=True))
    assert "does not exist" in _bind_refusal(f"{tree}/ws/new:/w", policy)
    message = _bind_refusal("/no/such/prefix/x:/x:ro", policy)
    assert "mount it into the runner read-only at the same path (/no/such/prefix:/no/such/prefix:ro)" in message


def test_anonymous_volumes_in_binds_are_not_host_paths() -> None:
    _check({"binds": ["/data"]})


def test_engine_socket_only_when_named_exactly(tree: Path) -> None:
    sockets = (f"{tree}/var/run/docker.sock",)
    broad = _binds_policy(BindRule(f"{tree}/var", read_only=True))
    assert "engine socket" in _bind_refusal(f"{tree}/var/run/docker.sock:/s:ro", broad, sockets)
    assert "engine socket" in _bind_refusal(f"{tree}/var/run:/s:ro", broad, sockets)
    CreateChecker(broad, sockets).check(_body({"binds": [f"{tree}/var/lib/data:/d:ro"]}))
    through_a_link = _binds_policy(BindRule(f"{tree}/alias", read_only=True))  # the operator's own symlink
    assert "engine socket" in _bind_refusal(f"{tree}/alias/docker.sock:/s:ro", through_a_link, sockets)
    exact = _binds_policy(BindRule(f"{tree}/var/run/docker.sock"))
    CreateChecker(exact, sockets).check(_body({"binds": [f"{tree}/var/run/docker.sock:/s"]}))
    host_socket = _binds_policy(BindRule("/var/run/docker.sock"))
    _check({"binds": ["/var/run/docker.sock:/var/run/docker.sock"]}, host_socket)
    root_children = _binds_policy(BindRule("/", read_only=True, depth=1))
    assert "engine socket" in _bind_refusal("/run:/r:ro", root_children)
    assert "engine socket" in _bind_refusal("/var:/v:ro", root_children)


@pytest.mark.parametrize(
    ("rules", "problem"),
    [
        ([BindRule("/srv/ws", depth=1), BindRule("/srv/ws/a", read_only=True)], "overlap"),
        ([BindRule("/srv", read_only=True), BindRule("/srv/ws", depth=1)], "overlap"),
        ([BindRule("/srv/ws", depth=1), BindRule("/srv/ws", depth=2)], "overlap"),
        ([BindRule("/srv/ws", depth=1), BindRule("/", read_only=True)], "overlap"),
    ],
)
def test_a_writable_rule_may_not_overlap_another(rules: list[BindRule], problem: str) -> None:
    """Containers write where a writable rule allows: another rule's sources must not go through there."""
    with pytest.raises(ValueError, match=problem):
        Policy(allow=Allow(binds=rules))


def test_rules_that_do_not_overlap_or_are_the_same_load() -> None:
    Policy(allow=Allow(binds=[BindRule("/srv/ws", depth=1), BindRule("/srv/ref", read_only=True)]))
    Policy(allow=Allow(binds=[BindRule("/srv/ref", read_only=True), BindRule("/srv/ref/x", read_only=True)]))
    same = Override(images=["docker:*dind*"], allow=Allow(binds=[BindRule("/srv/ws/", depth=1)]))
    Policy(allow=Allow(binds=[BindRule("/srv/ws", depth=1)]), overrides=[same])


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("allow: {binds: [{source: srv/ws}]}", "absolute"),
        ("allow: {binds: [{source: /srv/../etc}]}", "'..'"),
        ("allow: {binds: [{source: /proc/1/root}]}", "/proc"),
        ("allow: {binds: [{source: /srv, depth: -1}]}", "depth"),
        ("allow: {publishHostIps: [localhost]}", "publishHostIps"),
        ("images: ['docker: dind']", "image pattern"),
        ("overrides: [{images: ['a@'], allow: {}}]", "image pattern"),
    ],
)
def test_unusable_rules_stop_the_policy_from_loading(tmp_path: Path, text: str, named: str) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    with pytest.raises(PolicyError, match=named):
        load_policy(path)


def test_a_writable_rule_without_depth_is_pointed_out(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """An older policy's writable prefix rule now allows its own path only: the start says so."""
    path = tmp_path / "policy.yaml"
    path.write_text("allow: {binds: [{source: /srv/ws}, {source: /srv/ro, readOnly: true}, {source: /w, depth: 1}]}")
    with caplog.at_level(logging.WARNING, logger="docker_runner.policy"):
        load_policy(path)
    (warning,) = [record.getMessage() for record in caplog.records if record.name == "docker_runner.policy"]
    assert "/srv/ws itself only" in warning and "depth" in warning


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
        # spellings the engine reads as weakening that a deny-list missed (Go's ParseBool, bare words)
        "no-new-privileges=f",
        "no-new-privileges:F",
        "no-new-privileges=0",
        "no-new-privileges=FALSE",
        "disable",
        "writable-cgroups=true",
        "writable-cgroups:1",
        "apparmor=lxc-container-default-cgns",
        "label=type:unconfined_t",
        "label:type:spc_t",
        "label=user:unconfined_u",
        "label=role:system_r",
        "label=filetype:unconfined_t",
        "label=level:s0-s0:c0.c1023",
        "label=nested",
        "seccomp=/etc/docker/lenient.json",
        " no-new-privileges",
        "No-New-Privileges",
        "",
    ],
)
def test_weakening_security_options(option: str) -> None:
    """An allow-list: anything but the known-safe options is denied, and allowed by name or by weakerSecurityOpt."""
    assert _denied(_extras("SecurityOpt", [option])).details["rule"] == "weakerSecurityOpt"
    _check(_extras("SecurityOpt", [option]), Policy(allow=Allow(weaker_security_opt=True)))
    _check(_extras("SecurityOpt", [option]), Policy(allow=Allow(security_opts=[option])))


def test_harmless_security_options() -> None:
    safe = ["no-new-privileges", "no-new-privileges=true", "no-new-privileges:1", "no-new-privileges=T"]
    safe += ["label=level:s0:c100", "label:level:s0:c1,c2", "label=level:s0", "apparmor=docker-default"]
    _check(_extras("SecurityOpt", [*safe, "writable-cgroups=false"]))


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
        # sizes and counts no engine could mean are refused, not an overflow (a 500)
        (
            {"createExtras": {"HostConfig": {"LogConfig": {"Config": {"max-size": "9" * 400}}}}},
            "HostConfig.LogConfig.Config.max-size",
        ),
        (
            {"createExtras": {"HostConfig": {"LogConfig": {"Config": {"max-file": "²"}}}}},
            "HostConfig.LogConfig.Config.max-file",
        ),
        (
            {"createExtras": {"HostConfig": {"LogConfig": {"Config": {"max-file": "9" * 5000}}}}},
            "HostConfig.LogConfig.Config.max-file",
        ),
    ],
)
def test_ceilings_cannot_be_exceeded(opts: dict[str, Any], field: str) -> None:
    assert _denied(opts, Policy(limits=SMALL)).details["field"] == field


def test_image_allow_list() -> None:
    policy = Policy(images=["runner-test/*", "python:3.*"])
    _check({"image": "runner-test/busybox:latest"}, policy)
    _check({"image": "runner-test/busybox"}, policy)
    _check({"image": "docker.io/runner-test/busybox:1.36"}, policy)
    _check({"image": "python:3.12-slim"}, policy)
    _check({"image": "index.docker.io/library/python:3.12"}, policy)
    error = _denied({"image": "evil/miner"}, policy)
    assert error.details == {"field": "Image", "rule": "images"}


@pytest.mark.parametrize(
    "image",
    [
        "runner-test/busybox/extra:1",  # * stays inside one path component
        "evil.io/runner-test/busybox",  # another registry
        "python:3.12@sha256:" + "a" * 64,  # a digest overrides the tag at the engine
        "python@sha256:" + "a" * 64,
        "evil.io/python:3.12",
        "library/python:2.7",
        "sha256:" + "b" * 64,  # an image id is none of these names
        "deadbeef",  # tried as an id prefix by the engine
    ],
)
def test_image_patterns_match_part_by_part(image: str) -> None:
    assert _denied({"image": image}, Policy(images=["runner-test/*", "python:3.*"])).details["rule"] == "images"


def test_image_pattern_syntax() -> None:
    """** spans path components, a registry glob stays in the registry, sha256:<glob> matches ids."""
    _check({"image": "ghcr.io/acme/team/app:1"}, Policy(images=["ghcr.io/acme/**"]))
    _denied({"image": "ghcr.io/other/app:1"}, Policy(images=["ghcr.io/acme/**"]))
    _check({"image": "registry.example.com:5000/app"}, Policy(images=["*.example.com:5000/*"]))
    _check({"image": "python@sha256:" + "a" * 64}, Policy(images=["python@sha256:*"]))
    _check({"image": "sha256:" + "b" * 64}, Policy(images=["sha256:*"]))
    _check({"image": "deadbeef"}, Policy(images=["sha256:dead*"]))
    _check({"image": "busybox"}, Policy(images=["*"]))  # every official image
    _denied({"image": "acme/busybox"}, Policy(images=["*"]))


def test_invalid_image_references_are_400() -> None:
    for image in ("Busybox", "busybox:", "a b", "busybox@sha256:zz"):
        assert _invalid({"image": image}) == "Image"
    assert _invalid({"createExtras": {"Image": 5}}) == "Image"


def test_overrides_apply_per_image() -> None:
    """The ready profile's pattern: privileged only for a Docker-in-Docker image, on Docker Hub."""
    policy = Policy(overrides=[Override(images=["docker:*dind*"], allow=Allow(privileged=True))])
    _check({"image": "docker:27-dind", "privileged": True}, policy)
    _check({"image": "docker.io/library/docker:dind", "privileged": True}, policy)
    _check({"image": "index.docker.io/library/docker:dind-rootless", "privileged": True}, policy)
    for image in ("busybox", "docker:5000/x/dind", "docker:5000/dind", "acme/docker:dind", "docker:cli"):
        _denied({"image": image, "privileged": True}, policy)
    _denied({"image": "docker:dind@sha256:" + "c" * 64, "privileged": True}, policy)
    _denied({"image": "sha256:" + "c" * 64, "privileged": True}, policy)


POLICIES = Path(__file__).resolve().parents[2] / "policies"


def test_default_policy_file_is_the_built_in_default() -> None:
    """policies/default.yaml documents exactly what an absent DOCKER_RUNNER_POLICY enforces."""
    assert msgspec.to_builtins(load_policy(POLICIES / "default.yaml")) == msgspec.to_builtins(Policy())
    assert load_policy(None) == Policy()


def test_platform_profile_loads() -> None:
    """Its bind sources are not on this machine: the runner says it cannot verify them."""
    profile = load_policy(POLICIES / "platform.yaml")
    _check({"image": "docker:27-dind", "privileged": True}, profile)
    _check({"image": "docker.io/library/docker:dind", "privileged": True}, profile)
    _denied({"image": "busybox", "privileged": True}, profile)
    _denied({"image": "docker:5000/x/dind", "privileged": True}, profile)  # another registry's "dind"
    assert "cannot be verified" in _bind_refusal("/srv/workspaces/w1:/w", profile)
    assert "read-only" in _bind_refusal("/srv/shared/toolchains/go:/go", profile)


def test_platform_profile_on_a_real_tree(tmp_path: Path) -> None:
    """The profile with its paths moved under a temporary directory: workspaces by name, toolchains read-only."""
    (tmp_path / "workspaces" / "w1").mkdir(parents=True)
    (tmp_path / "workspaces" / "w1" / "evil").symlink_to("/")
    (tmp_path / "shared" / "toolchains" / "go").mkdir(parents=True)
    moved = tmp_path / "platform.yaml"
    moved.write_text((POLICIES / "platform.yaml").read_text().replace("/srv/", f"{tmp_path}/"))
    profile = load_policy(moved)
    _check({"binds": [f"{tmp_path}/workspaces/w1:/w", f"{tmp_path}/shared/toolchains/go:/go:ro"]}, profile)
    _check({"image": "docker:dind", "privileged": True, "binds": [f"{tmp_path}/workspaces/w1:/w"]}, profile)
    assert "exactly 1" in _bind_refusal(f"{tmp_path}/workspaces/w1/evil:/host", profile)
    assert "exactly 1" in _bind_refusal(f"{tmp_path}/workspaces:/all", profile)


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


def test_links_denied_then_allowed() -> None:
    """Legacy links copy the linked container's environment and tell whether a name exists."""
    assert _denied(_extras("Links", ["other:alias"])).details == {"field": "HostConfig.Links", "rule": "links"}
    _check(_extras("Links", ["other:alias"]), Policy(allow=Allow(links=True)))
    endpoint = {"createExtras": {"NetworkingConfig": {"EndpointsConfig": {"bridge": {"links": ["other"]}}}}}
    error = _denied(endpoint)
    assert error.details == {"field": "NetworkingConfig.EndpointsConfig.bridge.Links", "rule": "links"}
    _check(endpoint, Policy(allow=Allow(links=True)))


@pytest.mark.parametrize("mode", ["someone-elses-net", "BRIDGE", "3f57d9401f8d", "Default"])
def test_networks_outside_the_policys_patterns_are_denied(mode: str) -> None:
    """Any user-defined network by default (the protocol's networkMode); a narrowed list denies the rest."""
    _check({"networkMode": mode})
    error = _denied({"networkMode": mode}, Policy(allow=Allow(networks=[])))
    assert error.details == {"field": "HostConfig.NetworkMode", "rule": "networks"}
    _check({"networkMode": mode}, Policy(allow=Allow(networks=[mode])))


def test_network_patterns_and_built_in_networks() -> None:
    for mode in ("bridge", "default", "none"):
        _check({"networkMode": mode}, Policy(allow=Allow(networks=[])))
    policy = Policy(allow=Allow(networks=["ws-*"]))
    _check({"networkMode": "ws-1"}, policy)
    _denied({"networkMode": "other"}, policy)


def test_endpoints_name_networks_too() -> None:
    """EndpointsConfig keys (and a NetworkID, which the engine prefers) are networks to join."""

    def endpoints(config: dict[str, Any]) -> dict[str, Any]:
        return {"createExtras": {"networkingconfig": {"endpointsconfig": config}}}

    field = "NetworkingConfig.EndpointsConfig.foreign"
    narrowed = Policy(allow=Allow(networks=[]))
    assert _denied(endpoints({"foreign": {}}), narrowed).details == {"field": field, "rule": "networks"}
    assert _denied(endpoints({"host": {}})).details["rule"] == "hostNamespaces"
    assert _denied(endpoints({"container:abc": {}})).details["rule"] == "containerNamespaces"
    allowed = Policy(allow=Allow(networks=["ws-*"]))
    _check(endpoints({"ws-1": {"Aliases": ["a"]}}), allowed)
    error = _denied(endpoints({"ws-1": {"networkid": "f00dfeed"}}), allowed)
    assert error.details == {"field": "NetworkingConfig.EndpointsConfig.ws-1.NetworkID", "rule": "networks"}


@pytest.mark.parametrize(("field", "value"), [("Cgroup", "container:abc"), ("IpcMode", "container:abc")])
def test_joining_another_containers_cgroup_or_namespace(field: str, value: str) -> None:
    assert _denied(_extras(field, value)).details == {"field": f"HostConfig.{field}", "rule": "containerNamespaces"}
    _check(_extras(field, value), Policy(allow=Allow(container_namespaces=True)))


def test_container_references_of_a_body() -> None:
    """What a caller that allows joining or linking must look up in its scope before creating."""
    body = _body(
        {
            "networkMode": "container:net1",
            "createExtras": {
                "HostConfig": {"PidMode": "container:pid1", "Links": ["l1:alias"], "VolumesFrom": ["v1:ro"]},
                "NetworkingConfig": {"EndpointsConfig": {"n": {"Links": ["l2"]}}},
            },
        }
    )
    assert container_references(body) == [
        ("HostConfig.NetworkMode", "net1"),
        ("HostConfig.PidMode", "pid1"),
        ("HostConfig.Links[0]", "l1"),
        ("HostConfig.VolumesFrom[0]", "v1"),
        ("NetworkingConfig.EndpointsConfig.n.Links[0]", "l2"),
    ]


@pytest.mark.parametrize(
    ("host", "field", "rule", "allow"),
    [
        ({"MemorySwap": -1}, "HostConfig.MemorySwap", "unlimitedSwap", Allow(unlimited_swap=True)),
        (
            {"Memory": 64 << 20, "MemorySwap": (128 << 20) + 1},
            "HostConfig.MemorySwap",
            "unlimitedSwap",
            Allow(unlimited_swap=True),
        ),
        ({"OomScoreAdj": -1}, "HostConfig.OomScoreAdj", "oomProtection", Allow(oom_protection=True)),
        ({"OomKillDisable": True}, "HostConfig.OomKillDisable", "oomProtection", Allow(oom_protection=True)),
        ({"Runtime": "kata"}, "HostConfig.Runtime", "runtimes", Allow(runtimes=["kata"])),
        ({"CgroupParent": "/"}, "HostConfig.CgroupParent", "cgroupParent", Allow(cgroup_parent=True)),
        (
            {"PublishAllPorts": True},
            "HostConfig.PublishAllPorts",
            "publishHostIps",
            Allow(publish_host_ips=["0.0.0.0"]),
        ),
    ],
)
def test_fields_without_a_rule_before(host: dict[str, Any], field: str, rule: str, allow: Allow) -> None:
    """Each is denied by default and allowed again by its policy entry."""
    assert _denied({"createExtras": {"HostConfig": host}}).details == {"field": field, "rule": rule}
    _check({"createExtras": {"HostConfig": host}}, Policy(allow=allow))


def test_swap_up_to_the_memory_limit_and_harmless_oom_values() -> None:
    for swap in (0, 64 << 20, 128 << 20):  # 64 << 20: a job's "no swap"
        _check({"resources": {"memoryBytes": 64 << 20}, "createExtras": {"HostConfig": {"MemorySwap": swap}}})
    _check(_extras("OomScoreAdj", 500))
    _check({"createExtras": {"HostConfig": {"OomKillDisable": False, "Runtime": "runc"}}})


@pytest.mark.parametrize("host_ip", ["", "0.0.0.0", "::", "localhost", " 127.0.0.1", "127.1", "10.0.0.5"])
def test_ports_are_published_on_loopback_only_by_default(host_ip: str) -> None:
    ports = {"PortBindings": {"80/tcp": [{"HostIp": host_ip, "HostPort": "8080"}]}}
    field = "HostConfig.PortBindings.80/tcp[0].HostIp"
    assert _denied({"createExtras": {"HostConfig": ports}}).details == {"field": field, "rule": "publishHostIps"}
    allowed = "0.0.0.0" if host_ip in ("", "localhost", " 127.0.0.1", "127.1") else host_ip
    _check({"createExtras": {"HostConfig": ports}}, Policy(allow=Allow(publish_host_ips=[allowed])))


def test_loopback_ports_pass_in_any_spelling_the_engine_reads_as_loopback() -> None:
    for host_ip in ("127.0.0.1", "::1", "0:0:0:0:0:0:0:1", "::ffff:127.0.0.1"):
        _check({"createExtras": {"HostConfig": {"PortBindings": {"80/tcp": [{"HostIp": host_ip}]}}}})
    _check({"createExtras": {"HostConfig": {"PortBindings": {"80/tcp": None}}}})
    lowercase = {"createExtras": {"hostconfig": {"portbindings": {"80/tcp": [{"hostip": "0.0.0.0"}]}}}}
    assert _denied(lowercase).details["rule"] == "publishHostIps"  # the engine reads hostip as HostIp


def test_ulimits_have_maxima() -> None:
    def ulimit(name: str, soft: int, hard: int) -> dict[str, Any]:
        return {"createExtras": {"HostConfig": {"Ulimits": [{"name": name, "soft": soft, "hard": hard}]}}}

    _check(ulimit("nofile", 1024, 1048576))
    _check(ulimit("nproc", -1, -1))
    assert _denied(ulimit("rtprio", 99, 99)).details["rule"] == "limits.ulimits"
    assert _denied(ulimit("rtprio", 99, 99)).details["field"] == "HostConfig.Ulimits[0].Name"
    assert _denied(ulimit("nofile", 1024, 1048577)).details["field"] == "HostConfig.Ulimits[0].Hard"
    assert _denied(ulimit("nofile", -1, -1)).details["field"] == "HostConfig.Ulimits[0].Soft"
    _check(ulimit("rtprio", 99, 99), Policy(limits=Limits(ulimits={"rtprio": 99})))
    _check(ulimit("nofile", -1, -1), Policy(limits=Limits(ulimits={"nofile": -1})))


def test_non_blocking_log_buffers_are_capped() -> None:
    """The buffer lives in the engine's memory: a default when unset, a maximum it cannot pass."""

    def log(config: dict[str, Any]) -> dict[str, Any]:
        return {"createExtras": {"HostConfig": {"LogConfig": {"Type": "json-file", "Config": config}}}}

    host = _check(log({"mode": "non-blocking"}))["HostConfig"]
    assert host["LogConfig"]["Config"]["max-buffer-size"] == str(1 << 20)
    host = _check(log({"mode": "non-blocking", "max-buffer-size": "4m"}))["HostConfig"]
    assert host["LogConfig"]["Config"]["max-buffer-size"] == str(4 << 20)
    error = _denied(log({"mode": "non-blocking", "max-buffer-size": "100g"}))
    assert error.details == {"field": "HostConfig.LogConfig.Config.max-buffer-size", "rule": "limits.logMaxBufferBytes"}
    _denied(log({"mode": "non-blocking", "max-buffer-size": "lots"}))
    bigger = Limits(log_max_buffer_bytes=Ceiling(1 << 20, 200 << 30))
    _check(log({"mode": "non-blocking", "max-buffer-size": "100g"}), Policy(limits=bigger))
    assert _check(log({"max-size": "1.5m"}))["HostConfig"]["LogConfig"]["Config"]["max-size"] == str(3 << 19)


GPU = {"Driver": "", "Count": -1, "DeviceIDs": None, "Capabilities": [["gpu"]]}


@pytest.mark.parametrize(
    "request_",
    [
        {**GPU, "Driver": "cdi", "DeviceIDs": ["vendor.com/device=all"]},
        {**GPU, "Driver": "custom"},
        {**GPU, "Capabilities": [["gpu", "graphics"]]},
        {**GPU, "Capabilities": [["compute"]]},
        {**GPU, "Capabilities": [["gpu"], ["nvidia", "display"]]},
        {**GPU, "Capabilities": []},
        {**GPU, "Options": {"visible": "all"}},
    ],
)
def test_device_requests_beyond_plain_gpus(request_: dict[str, Any]) -> None:
    """With gpus allowed, only the GPU driver for gpu/compute/utility passes; the rest needs anyDeviceRequests."""
    extras = _extras("DeviceRequests", [request_])
    error = _denied(extras, Policy(allow=Allow(gpus=True)))
    assert error.details == {"field": "HostConfig.DeviceRequests[0]", "rule": "anyDeviceRequests"}
    _check(extras, Policy(allow=Allow(any_device_requests=True)))


def test_plain_gpu_requests_pass_with_gpus() -> None:
    gpus = Policy(allow=Allow(gpus=True))
    _check({"resources": {"gpus": "all"}}, gpus)  # as jobs build them
    _check({"resources": {"gpus": ["0", "GPU-1234"]}}, gpus)
    nvidia = {**GPU, "Driver": "nvidia", "Capabilities": [["gpu", "compute", "utility"]], "Options": {}}
    _check(_extras("DeviceRequests", [nvidia]), gpus)
    error = _denied(_extras("DeviceRequests", [nvidia]))
    assert error.details == {"field": "HostConfig.DeviceRequests", "rule": "gpus"}


@pytest.mark.parametrize(
    ("host", "field"),
    [
        ({"LogConfig": {"Config": 5}}, "HostConfig.LogConfig.Config"),
        ({"LogConfig": {"Config": "ab"}}, "HostConfig.LogConfig.Config"),
        ({"LogConfig": {"Config": {"max-size": 5}}}, "HostConfig.LogConfig.Config.max-size"),
        ({"LogConfig": {"Type": ["json-file"]}}, "HostConfig.LogConfig.Type"),
        ({"LogConfig": "json-file"}, "HostConfig.LogConfig"),
        ({"Memory": "1g"}, "HostConfig.Memory"),
        ({"Memory": 1.5}, "HostConfig.Memory"),
        ({"PidsLimit": True}, "HostConfig.PidsLimit"),
        ({"NanoCpus": "1"}, "HostConfig.NanoCpus"),
        ({"CpuQuota": "1"}, "HostConfig.CpuQuota"),
        ({"CpuQuota": 50_000, "CpuPeriod": "100000"}, "HostConfig.CpuPeriod"),
        ({"MemorySwap": "-1"}, "HostConfig.MemorySwap"),
        ({"OomScoreAdj": "-1"}, "HostConfig.OomScoreAdj"),
        ({"OomKillDisable": "yes"}, "HostConfig.OomKillDisable"),
        ({"Runtime": 1}, "HostConfig.Runtime"),
        ({"CapAdd": "ALL"}, "HostConfig.CapAdd"),
        ({"CapAdd": [1]}, "HostConfig.CapAdd[0]"),
        ({"Binds": "/etc:/x"}, "HostConfig.Binds"),
        ({"Binds": [None]}, "HostConfig.Binds[0]"),
        ({"Mounts": [1]}, "HostConfig.Mounts[0]"),
        ({"Mounts": [{"Type": 1}]}, "HostConfig.Mounts[0].Type"),
        ({"Mounts": [{"Type": "bind", "Source": 5}]}, "HostConfig.Mounts[0].Source"),
        ({"Mounts": [{"Type": "bind", "Source": "/x", "ReadOnly": "yes"}]}, "HostConfig.Mounts[0].ReadOnly"),
        ({"Mounts": [{"Type": "volume", "VolumeOptions": []}]}, "HostConfig.Mounts[0].VolumeOptions"),
        ({"VolumeDriver": 1}, "HostConfig.VolumeDriver"),
        ({"Sysctls": ["a"]}, "HostConfig.Sysctls"),
        ({"Sysctls": {"net.core.somaxconn": 1}}, "HostConfig.Sysctls.net.core.somaxconn"),
        ({"SecurityOpt": "no-new-privileges"}, "HostConfig.SecurityOpt"),
        ({"NetworkMode": 5}, "HostConfig.NetworkMode"),
        ({"PidMode": ["host"]}, "HostConfig.PidMode"),
        ({"Links": "other"}, "HostConfig.Links"),
        ({"Devices": {"PathOnHost": "/dev/kmsg"}}, "HostConfig.Devices"),
        ({"MaskedPaths": "/proc"}, "HostConfig.MaskedPaths"),
        ({"CgroupParent": ["/"]}, "HostConfig.CgroupParent"),
        ({"PortBindings": []}, "HostConfig.PortBindings"),
        ({"PortBindings": {"80/tcp": "8080"}}, "HostConfig.PortBindings.80/tcp"),
        ({"PortBindings": {"80/tcp": [{"HostIp": 1}]}}, "HostConfig.PortBindings.80/tcp[0].HostIp"),
        ({"PortBindings": {"80/tcp": [{"HostPort": 8080}]}}, "HostConfig.PortBindings.80/tcp[0].HostPort"),
        ({"PublishAllPorts": 1}, "HostConfig.PublishAllPorts"),
        ({"Ulimits": {}}, "HostConfig.Ulimits"),
        ({"Ulimits": [{"Name": 1}]}, "HostConfig.Ulimits[0].Name"),
        ({"Ulimits": [{"Name": "nofile", "Soft": "1"}]}, "HostConfig.Ulimits[0].Soft"),
        ({"DeviceRequests": {}}, "HostConfig.DeviceRequests"),
        ({"DeviceRequests": [{"Count": "1"}]}, "HostConfig.DeviceRequests[0].Count"),
        ({"DeviceRequests": [{"Capabilities": "gpu"}]}, "HostConfig.DeviceRequests[0].Capabilities"),
        ({"DeviceRequests": [{"Capabilities": ["gpu"]}]}, "HostConfig.DeviceRequests[0].Capabilities[0]"),
        ({"DeviceRequests": [{"Options": {"a": 1}}]}, "HostConfig.DeviceRequests[0].Options.a"),
    ],
)
def test_wrongly_typed_values_are_400_naming_the_field(host: dict[str, Any], field: str) -> None:
    """Never a 500, never a guess: the value the policy would read has the wrong type."""
    allow_all = Policy(allow=Allow(gpus=True, devices=True, links=True, cgroup_parent=True, unmasked_paths=True))
    assert _invalid({"createExtras": {"HostConfig": host}}, allow_all) == field


def test_wrongly_typed_bodies_are_400() -> None:
    assert _invalid({"createExtras": {"HostConfig": []}}) == "HostConfig"
    assert _invalid({"createExtras": {"NetworkingConfig": []}}) == "NetworkingConfig"
    endpoints = {"createExtras": {"NetworkingConfig": {"EndpointsConfig": {"n": {"Links": "x"}}}}}
    assert _invalid(endpoints, Policy(allow=Allow(networks=["n"]))) == "NetworkingConfig.EndpointsConfig.n.Links"
