"""The Swarm stack files agree with each other and with what this machine's kernel needs (pure:
they are read as YAML, not deployed; tests/cluster/test_stack.py deploys them)."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

REPOSITORY = Path(__file__).resolve().parents[2]
COMPOSE = REPOSITORY / "compose"


def _load(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(path.read_text())
    return loaded


STACK = _load(COMPOSE / "docker-stack.yml")
MONITORING = _load(COMPOSE / "docker-stack.monitoring.yml")
RUNNER = STACK["services"]["runner"]


def test_the_runner_is_global_on_the_overlay_with_its_port_in_host_mode() -> None:
    """One task per node, on an attachable overlay, each node's address publishing its own runner."""
    assert RUNNER["deploy"]["mode"] == "global"
    assert [port["mode"] for port in RUNNER["ports"]] == ["host"]
    for network in RUNNER["networks"]:
        assert STACK["networks"][network] == {"driver": "overlay", "attachable": True}


def test_every_service_uses_dns_round_robin() -> None:
    """No service VIP anywhere (it needs IPVS): endpoint_mode dnsrr in both files."""
    for services in (STACK["services"], MONITORING["services"]):
        for name, service in services.items():
            assert service["deploy"]["endpoint_mode"] == "dnsrr", name


def test_cluster_settings_name_the_stacks_own_services() -> None:
    """Peers are tasks.<the runner service>; the nonce store is the Redis service on the same network."""
    env = RUNNER["environment"]
    assert env["DOCKER_RUNNER_CLUSTER"] == "swarm"
    assert env["DOCKER_RUNNER_PEERS"] == "tasks.runner"
    store = urlsplit(env["DOCKER_RUNNER_NONCE_STORE"])
    assert store.scheme == "redis"
    assert store.hostname in STACK["services"]
    assert set(STACK["services"][store.hostname]["networks"]) == set(RUNNER["networks"])


def test_the_secret_is_a_swarm_secret_read_from_its_file() -> None:
    """DOCKER_RUNNER_SHARED_SECRET_FILE is the mounted secret's path; no secret value is in the environment."""
    env = RUNNER["environment"]
    assert [name for name in env if name.startswith("DOCKER_RUNNER_SHARED_SECRET")] == [
        "DOCKER_RUNNER_SHARED_SECRET_FILE"
    ]
    (secret,) = RUNNER["secrets"]
    assert env["DOCKER_RUNNER_SHARED_SECRET_FILE"] == f"/run/secrets/{secret['target']}"
    assert STACK["secrets"][secret["source"]]["external"] is True


def test_the_engine_socket_comes_from_docker_socket() -> None:
    (mount,) = RUNNER["volumes"]
    assert (mount["type"], mount["source"], mount["target"]) == (
        "bind",
        "${DOCKER_SOCKET:-/var/run/docker.sock}",
        "/var/run/docker.sock",
    )


def test_prometheus_scrapes_every_runner_task() -> None:
    """The stack's Prometheus config looks up tasks.<runner service> on the runners' port."""
    files = {name: COMPOSE / config["file"] for name, config in MONITORING["configs"].items()}
    assert all(path.is_file() for path in files.values()), files
    prometheus = _load(files["prometheus-config"])
    (job,) = prometheus["scrape_configs"]
    (lookup,) = job["dns_sd_configs"]
    assert lookup["names"] == ["tasks.runner"]
    assert str(lookup["port"]) == RUNNER["environment"]["DOCKER_RUNNER_PORT"].removeprefix(
        "${DOCKER_RUNNER_PORT:-"
    ).removesuffix("}")
    assert set(MONITORING["services"]["prometheus"]["networks"]) == set(RUNNER["networks"])
