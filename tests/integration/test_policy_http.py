"""The create policy over HTTP against the real engine: denials, allowances, ceilings enforced."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

import docker
import httpx
import pytest

from docker_runner_client import (
    ContainerOpts,
    DockerRunnerRequestError,
    ExecOptions,
    ExecTimeout,
    Forbidden,
    HttpDockerRunnerClient,
    Resources,
)
from tests.conftest import sleeper_opts
from tests.support.docker_env import SESSION_ID, SESSION_LABEL, SESSION_LABELS, TEST_IMAGE
from tests.support.server import TEST_SECRET, RunningServer, make_settings, running_runner
from tests.support.signed import error_of, signed_request

pytestmark = pytest.mark.docker


def _session_containers(api: docker.APIClient) -> list[str]:
    return [c["Id"] for c in api.containers(all=True, filters={"label": f"{SESSION_LABEL}={SESSION_ID}"})]


@pytest.mark.parametrize(
    "raw",
    [
        b'{"image":"%s","privileged":true}',
        b'{"image":"%s","createExtras":{"HostConfig":{"Privileged":true}}}',
        b'{"image":"%s","createExtras":{"hostconfig":{"PRIVILEGED":true}}}',
        b'{"image":"%s","createExtras":{"\\u0048ostConfig":{"Privileged":true}}}',
        b'{"image":"%s","createExtras":{"HostConfig":{},"HostConfig":{"Privileged":true}}}',
        b'{"image":"%s","createExtras":{"HostConfig":{"Privileged":true},"hostConfig":{}}}',
    ],
)
def test_privileged_is_denied_in_every_spelling(
    runner: RunningServer, docker_api: docker.APIClient, raw: bytes
) -> None:
    """Each spelling answers 403 policy_denied naming the field and the rule; nothing is created."""
    before = {c["Id"] for c in docker_api.containers(all=True)}
    body = raw.replace(b"%s", TEST_IMAGE.encode())
    response = signed_request(
        runner.url, "POST", "/v1/containers/start", content=body, headers={"content-type": "application/json"}
    )
    error = error_of(response)
    assert (response.status_code, error["code"], error["retryable"]) == (403, "policy_denied", False)
    assert error["details"] == {"field": "HostConfig.Privileged", "rule": "privileged"}
    assert "HostConfig.Privileged" in error["message"] and "privileged" in error["message"]
    assert {c["Id"] for c in docker_api.containers(all=True)} <= before  # nothing was created


@pytest.mark.parametrize(
    ("opts", "field"),
    [
        (dict(binds=["/etc:/host-etc"]), "HostConfig.Binds[0]"),
        (dict(binds=["/var/run/docker.sock:/var/run/docker.sock"]), "HostConfig.Binds[0]"),
        (dict(network_mode="host"), "HostConfig.NetworkMode"),
        (dict(create_extras={"HostConfig": {"PidMode": "host"}}), "HostConfig.PidMode"),
        (dict(create_extras={"HostConfig": {"CapAdd": ["SYS_ADMIN"]}}), "HostConfig.CapAdd[0]"),
        (dict(create_extras={"HostConfig": {"SecurityOpt": ["seccomp=unconfined"]}}), "HostConfig.SecurityOpt[0]"),
        (
            dict(
                create_extras={
                    "HostConfig": {
                        "Devices": [
                            {"PathOnHost": "/dev/kmsg", "PathInContainer": "/dev/kmsg", "CgroupPermissions": "r"}
                        ]
                    }
                }
            ),
            "HostConfig.Devices",
        ),
        (
            dict(create_extras={"HostConfig": {"Sysctls": {"net.ipv4.ip_forward": "1"}}}),
            "HostConfig.Sysctls.net.ipv4.ip_forward",
        ),
        (dict(resources=Resources(gpus="all")), "HostConfig.DeviceRequests"),
        (dict(resources=Resources(pids_limit=100_000)), "HostConfig.PidsLimit"),
    ],
)
def test_denials_reach_the_client_as_forbidden(
    client: HttpDockerRunnerClient, docker_api: docker.APIClient, opts: dict[str, object], field: str
) -> None:
    before = set(_session_containers(docker_api))
    with pytest.raises(Forbidden) as caught:
        client.start_container(sleeper_opts(**opts))
    assert caught.value.code == "policy_denied" and caught.value.details["field"] == field
    assert set(_session_containers(docker_api)) == before


@pytest.fixture
def permissive(tmp_path: Path) -> Iterator[RunningServer]:
    """A runner whose policy allows a capability, a bind prefix (read-only) and caps pids at 32 by default."""
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "hello.txt").write_text("from the host")
    policy = {
        "allow": {
            "capAdd": ["NET_ADMIN"],
            "binds": [{"source": str(shared), "readOnly": True}],
            "privileged": True,
            "links": True,
            "securityOpts": ["no-new-privileges=false"],
            "unlimitedSwap": True,
            "oomProtection": True,
        },
        "limits": {
            "pidsLimit": {"default": 32, "max": 64},
            "memoryBytes": {"default": 64 << 20, "max": 256 << 20},
            "ulimits": {"rtprio": 5},
        },
    }
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(policy))
    with running_runner(make_settings(policy_path=path)) as server:
        server.shared_dir = shared  # type: ignore[attr-defined]
        yield server


def test_each_allowed_again_by_its_entry(permissive: RunningServer) -> None:
    """A capability and a read-only bind prefix, once in the policy, reach the container."""
    shared: Path = permissive.shared_dir  # type: ignore[attr-defined]
    with HttpDockerRunnerClient(permissive.url, TEST_SECRET) as client:
        opts = sleeper_opts(binds=[f"{shared}:/shared:ro"], create_extras={"HostConfig": {"CapAdd": ["NET_ADMIN"]}})
        started = client.start_container(opts)
        try:
            assert client.inspect_container(started.container_id)["HostConfig"]["CapAdd"] == ["NET_ADMIN"]
            assert client.exec_run(started.container_id, "cat /shared/hello.txt").stdout == "from the host"
            with pytest.raises(Forbidden):
                client.start_container(sleeper_opts(binds=[f"{shared}:/shared"]))  # read-only required
        finally:
            client.remove_container(started.container_id, force=True)


def test_new_entries_allow_again(permissive: RunningServer) -> None:
    """Links, a named security option and unlimited swap, once in the policy, reach the engine as asked."""
    with HttpDockerRunnerClient(permissive.url, TEST_SECRET) as client:
        target = client.start_container(sleeper_opts())
        started = None
        try:
            target_name = client.inspect_container(target.container_id)["Name"].lstrip("/")
            host = {"Links": [f"{target_name}:peer"], "SecurityOpt": ["no-new-privileges=false"], "MemorySwap": -1}
            started = client.start_container(sleeper_opts(create_extras={"HostConfig": host}))
            inspected = client.inspect_container(started.container_id)["HostConfig"]
            assert inspected["Links"] and inspected["Links"][0].endswith("/peer")
            assert (inspected["SecurityOpt"], inspected["MemorySwap"]) == (["no-new-privileges=false"], -1)
        finally:
            if started is not None:
                client.remove_container(started.container_id, force=True)
            client.remove_container(target.container_id, force=True)


@pytest.mark.parametrize(
    "host", [{"OomScoreAdj": -10}, {"OomKillDisable": True}, {"Ulimits": [{"Name": "rtprio", "Soft": 5, "Hard": 5}]}]
)
def test_oom_protection_and_listed_ulimits_pass_the_policy(permissive: RunningServer, host: dict[str, object]) -> None:
    """Allowed, they pass the policy. (A sandboxed engine may lack the capabilities to apply them:
    that refusal is the engine's own, never policy_denied.)"""
    with HttpDockerRunnerClient(permissive.url, TEST_SECRET) as client:
        try:
            started = client.start_container(sleeper_opts(create_extras={"HostConfig": host}))
        except DockerRunnerRequestError as refused:
            assert refused.code != "policy_denied", refused.message
            return
        try:
            inspected = client.inspect_container(started.container_id)["HostConfig"]
            assert {key: inspected[key] for key in host} == host
        finally:
            client.remove_container(started.container_id, force=True)


def test_privileged_allowed_by_its_entry_reaches_the_engine(permissive: RunningServer) -> None:
    """Allowed, privileged passes the policy. (A sandboxed engine may still refuse to run it: that
    refusal is the engine's own, never policy_denied.)"""
    with HttpDockerRunnerClient(permissive.url, TEST_SECRET) as client:
        try:
            started = client.start_container(sleeper_opts(privileged=True))
        except DockerRunnerRequestError as refused:
            assert refused.code != "policy_denied" and "caps" in refused.message
            return
        try:
            assert client.inspect_container(started.container_id)["HostConfig"]["Privileged"] is True
        finally:
            client.remove_container(started.container_id, force=True)


def test_fork_bomb_stops_at_the_pid_ceiling(permissive: RunningServer) -> None:
    """The default pids limit is applied; a fork bomb hits it and the runner keeps answering."""
    with HttpDockerRunnerClient(permissive.url, TEST_SECRET) as client:
        started = client.start_container(sleeper_opts())
        try:
            host = client.inspect_container(started.container_id)["HostConfig"]
            assert (host["PidsLimit"], host["Memory"]) == (32, 64 << 20)
            bomb = "b() { b | b & }; b; sleep 1; ls /proc | grep -c '^[0-9]'"
            with contextlib.suppress(ExecTimeout):
                client.exec_run(started.container_id, bomb, ExecOptions(timeout_ms=4000))
            assert httpx.get(permissive.url + "/v1/health").status_code == 200
            counted = signed_request(
                permissive.url, "GET", f"/v1/containers/inspect?containerId={started.container_id}"
            )
            assert counted.status_code == 200
            stats = docker.APIClient(version="auto").stats(started.container_id, stream=False)
            assert stats["pids_stats"]["current"] <= 32
        finally:
            client.remove_container(started.container_id, force=True)


def test_image_allow_list_applies_to_start_and_ensure(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("images: ['runner-test/*']\n")
    with (
        running_runner(make_settings(policy_path=path)) as server,
        HttpDockerRunnerClient(server.url, TEST_SECRET) as client,
    ):
        with pytest.raises(Forbidden) as caught:
            client.ensure_image("evil/miner:latest")
        assert caught.value.details == {"field": "Image", "rule": "images"}
        with pytest.raises(Forbidden):
            client.start_container(ContainerOpts(image="busybox:latest"))
        started = client.start_container(sleeper_opts())
        client.remove_container(started.container_id, force=True)


def _start_raw(url: str, body: dict[str, object]) -> httpx.Response:
    """POST /v1/containers/start with the body as given (keys in any spelling)."""
    full = {"image": TEST_IMAGE, "cmd": ["sleep", "3600"], "labels": SESSION_LABELS, **body}
    return signed_request(url, "POST", "/v1/containers/start", json_body=full)


@pytest.mark.parametrize(
    ("host", "field", "rule"),
    [
        ({"ulimits": [{"name": "rtprio", "soft": 5, "hard": 5}]}, "HostConfig.Ulimits[0].Name", "limits.ulimits"),
        (
            {"portbindings": {"8080/tcp": [{"hostip": "0.0.0.0", "hostport": "0"}]}},
            "HostConfig.PortBindings.8080/tcp[0].HostIp",
            "publishHostIps",
        ),
        ({"publishAllPorts": True}, "HostConfig.PublishAllPorts", "publishHostIps"),
        ({"links": ["anything:alias"]}, "HostConfig.Links", "links"),
        ({"securityopt": ["no-new-privileges=f"]}, "HostConfig.SecurityOpt[0]", "weakerSecurityOpt"),
        ({"securityopt": ["label=type:unconfined_t"]}, "HostConfig.SecurityOpt[0]", "weakerSecurityOpt"),
        ({"memoryswap": -1}, "HostConfig.MemorySwap", "unlimitedSwap"),
        ({"oomkilldisable": True}, "HostConfig.OomKillDisable", "oomProtection"),
        ({"oomScoreAdj": -1000}, "HostConfig.OomScoreAdj", "oomProtection"),
        ({"runtime": "kata"}, "HostConfig.Runtime", "runtimes"),
        ({"cgroup": "container:abc"}, "HostConfig.Cgroup", "containerNamespaces"),
        (
            {"logconfig": {"config": {"mode": "non-blocking", "max-buffer-size": "100g"}}},
            "HostConfig.LogConfig.Config.max-buffer-size",
            "limits.logMaxBufferBytes",
        ),
    ],
)
def test_fields_the_audit_found_unchecked_are_denied(
    runner: RunningServer, docker_api: docker.APIClient, host: dict[str, object], field: str, rule: str
) -> None:
    """403 policy_denied naming the field and the rule, whatever the key spelling; nothing is created."""
    before = set(_session_containers(docker_api))
    response = _start_raw(runner.url, {"createExtras": {"hostconfig": host}})
    assert response.status_code == 403, response.text
    assert error_of(response)["details"] == {"field": field, "rule": rule}
    assert set(_session_containers(docker_api)) == before


@pytest.mark.parametrize(
    ("extras", "field"),
    [
        ({"HostConfig": {"LogConfig": {"Config": 5}}}, "HostConfig.LogConfig.Config"),
        ({"HostConfig": {"LogConfig": {"Config": "ab"}}}, "HostConfig.LogConfig.Config"),
        ({"HostConfig": {"Memory": "1g"}}, "HostConfig.Memory"),
        ({"HostConfig": {"CapAdd": "ALL"}}, "HostConfig.CapAdd"),
        ({"HostConfig": {"Ulimits": [{"Name": "nofile", "Soft": "1", "Hard": 2}]}}, "HostConfig.Ulimits[0].Soft"),
        ({"HostConfig": []}, "HostConfig"),
        ({"Image": 5}, "Image"),
    ],
)
def test_wrongly_typed_values_are_400_not_500(
    runner: RunningServer, docker_api: docker.APIClient, extras: dict[str, object], field: str
) -> None:
    before = set(_session_containers(docker_api))
    response = _start_raw(runner.url, {"createExtras": extras})
    assert (response.status_code, error_of(response)["code"]) == (400, "validation_error"), response.text
    assert error_of(response)["details"] == {"field": field}
    assert set(_session_containers(docker_api)) == before


def test_what_the_defaults_allow_reaches_the_engine(client: HttpDockerRunnerClient) -> None:
    """Loopback ports, a bounded nofile, a non-blocking log with its buffer capped, no-new-privileges."""
    host = {
        "PortBindings": {"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}]},
        "Ulimits": [{"Name": "nofile", "Soft": 4096, "Hard": 8192}],
        "LogConfig": {"Type": "json-file", "Config": {"mode": "non-blocking"}},
        "SecurityOpt": ["no-new-privileges:true"],
    }
    started = client.start_container(sleeper_opts(create_extras={"ExposedPorts": {"8080/tcp": {}}, "HostConfig": host}))
    try:
        inspected = client.inspect_container(started.container_id)
        assert inspected["HostConfig"]["PortBindings"]["8080/tcp"][0]["HostIp"] == "127.0.0.1"
        assert inspected["HostConfig"]["Ulimits"] == [{"Name": "nofile", "Soft": 4096, "Hard": 8192}]
        assert inspected["HostConfig"]["LogConfig"]["Config"]["max-buffer-size"] == str(1 << 20)
        published = inspected["NetworkSettings"]["Ports"]["8080/tcp"]
        assert published and {binding["HostIp"] for binding in published} == {"127.0.0.1"}
    finally:
        client.remove_container(started.container_id, force=True)


@pytest.fixture
def workspaces(tmp_path: Path) -> Iterator[RunningServer]:
    """A runner whose policy allows per-workspace directories under a prefix, read-write (depth 1)."""
    root = tmp_path / "workspaces"
    (root / "a").mkdir(parents=True)
    path = tmp_path / "policy.yaml"
    path.write_text(json.dumps({"allow": {"binds": [{"source": str(root), "depth": 1}]}}))
    with running_runner(make_settings(policy_path=path)) as server:
        server.workspaces = root  # type: ignore[attr-defined]
        yield server


def test_a_symlink_planted_by_a_container_does_not_reach_the_host(
    workspaces: RunningServer, docker_api: docker.APIClient
) -> None:
    """The audit's exploit: a container with workspaces/a writable plants evil -> /, another asks for
    workspaces/a/evil: refused, and no container sees the host's root."""
    root: Path = workspaces.workspaces  # type: ignore[attr-defined]
    with HttpDockerRunnerClient(workspaces.url, TEST_SECRET) as client:
        planter = client.start_container(sleeper_opts(binds=[f"{root}/a:/w"]))
        try:
            assert client.exec_run(planter.container_id, "ln -s / /w/evil && echo planted").stdout == "planted\n"
            assert (root / "a" / "evil").is_symlink()
            before = set(_session_containers(docker_api))
            for opts in (
                sleeper_opts(binds=[f"{root}/a/evil:/host"]),
                sleeper_opts(binds=[f"{root}/a/evil/etc:/host-etc:ro"]),
                sleeper_opts(
                    create_extras={
                        "HostConfig": {"Mounts": [{"Type": "bind", "Source": f"{root}/a/evil", "Target": "/host"}]}
                    }
                ),
            ):
                with pytest.raises(Forbidden) as caught:
                    client.start_container(opts)
                assert caught.value.details["rule"] == "binds"
            assert set(_session_containers(docker_api)) == before
            with pytest.raises(Forbidden) as missing:
                client.start_container(sleeper_opts(binds=[f"{root}/b:/w"]))  # the engine would create it
            assert "does not exist" in missing.value.message and not (root / "b").exists()
        finally:
            client.remove_container(planter.container_id, force=True)
