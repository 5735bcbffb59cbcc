"""Helpers of the packaging tests: host tools (docker-compose, promtool, prometheus), the runner
image built from runner/Dockerfile, compose projects that always come down, a real Prometheus."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import docker.errors
import httpx
import pytest

from tests.support.waiting import wait_for

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "runner" / "Dockerfile"
BASE_COMPOSE = REPO / "compose" / "docker-compose.yml"
MONITORING_COMPOSE = REPO / "compose" / "docker-compose.monitoring.yml"
PROMETHEUS_DIR = REPO / "monitoring" / "prometheus"
GRAFANA_DIR = REPO / "monitoring" / "grafana"
DASHBOARD = GRAFANA_DIR / "dashboards" / "docker-runner.json"
DATASOURCES = GRAFANA_DIR / "provisioning" / "datasources"
DEBIAN_BASE_SCRIPT = REPO / "tests" / "support" / "debian_base.sh"
# the certificates `make image` passes to the build (networks whose egress re-signs TLS)
LOCAL_CA_DIR = Path("/usr/local/share/ca-certificates")
COMPOSE_PROJECT_LABEL = "com.docker.compose.project"

# variables the compose files read: a test gives them in its env file, never from the caller's shell
COMPOSE_VARIABLES = (
    "DOCKER_RUNNER_PORT",
    "DOCKER_GID",
    "DOCKER_SOCKET",
    "DOCKER_RUNNER_ENV_FILE",
    "DOCKER_RUNNER_IMAGE",
    "EXTRA_CA_CERTS",
    "PROMETHEUS_PORT",
    "GRAFANA_PORT",
    "GRAFANA_ADMIN_PASSWORD",
    "COMPOSE_FILE",
    "COMPOSE_PROJECT_NAME",
)


def require_tool(name: str, package: str) -> str:
    """The tool's path; skip without it, or fail when RUNNER_REQUIRE_DOCKER=1 (as CI sets)."""
    path = shutil.which(name)
    if path is not None:
        return path
    problem = f"{name} is not installed (apt-get install {package}; .ci/run does it)"
    if os.environ.get("RUNNER_REQUIRE_DOCKER") == "1":
        pytest.fail(f"RUNNER_REQUIRE_DOCKER=1 but {problem}")
    pytest.skip(problem)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def docker_socket() -> Path:
    """The engine's unix socket on this host (what compose mounts into the runner)."""
    host = os.environ.get("DOCKER_HOST", "")
    return Path(host.removeprefix("unix://")) if host.startswith("unix://") else Path("/var/run/docker.sock")


def write_env_file(path: Path, values: Mapping[str, str | int | Path]) -> Path:
    path.write_text("".join(f"{name}={value}\n" for name, value in values.items()), encoding="utf-8")
    path.chmod(0o600)
    return path


def runner_env_file(path: Path, **settings: str) -> Path:
    """.env.example with ``settings`` changed: what an operator's .env looks like."""
    text = (REPO / ".env.example").read_text(encoding="utf-8")
    for name, value in settings.items():
        line = f"{name}={value}"
        pattern = re.compile(rf"^{name}=.*$", re.M)
        text = pattern.sub(line, text, count=1) if pattern.search(text) else text + line + "\n"
    path.write_text(text, encoding="utf-8")
    path.chmod(0o600)
    return path


def compose(
    compose_bin: str,
    env_file: Path,
    files: list[Path],
    *args: str,
    project: str | None = None,
    timeout: float = 120,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """docker-compose with the variables of ``env_file`` only (none leak in from the caller's shell)."""
    command = [compose_bin, "--env-file", str(env_file)]
    if project is not None:
        command += ["-p", project]
    for file in files:
        command += ["-f", str(file)]
    env = {name: value for name, value in os.environ.items() if name not in COMPOSE_VARIABLES}
    result = subprocess.run(
        [*command, *args], capture_output=True, text=True, timeout=timeout, env=env, cwd=REPO, check=False
    )
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(command + list(args))} exited {result.returncode}:\n{result.stderr}")
    return result


# ---- the image ------------------------------------------------------------------------------


def ensure_debian_base() -> None:
    """debian:bookworm-slim, bootstrapped locally when absent (no registry is used)."""
    result = subprocess.run(["bash", str(DEBIAN_BASE_SCRIPT)], capture_output=True, text=True, timeout=900, check=False)
    if result.returncode != 0:
        raise AssertionError(f"debian_base.sh exited {result.returncode}:\n{result.stderr[-3000:]}")


def extra_ca_certs() -> str:
    if not LOCAL_CA_DIR.is_dir():
        return ""
    return "".join(path.read_text(encoding="utf-8") for path in sorted(LOCAL_CA_DIR.glob("*.crt")))


def all_image_ids(api: docker.APIClient) -> set[str]:
    return {str(item["Id"]) for item in api.images(all=True)}


@dataclass
class BuiltImage:
    tag: str
    seconds: float
    new_images: list[str] = field(default_factory=list)  # intermediate images this build made, oldest first


def build_image(api: docker.APIClient, tag: str) -> BuiltImage:
    """``docker build -f runner/Dockerfile`` of the repository, as `make image` does."""
    before = all_image_ids(api)
    started = time.monotonic()
    # the classic builder: it resolves FROM from local images alone, and BuildKit may not be installed
    env = {**os.environ, "DOCKER_BUILDKIT": "0"}
    result = subprocess.run(
        [
            "docker",
            "build",
            "--force-rm",
            "-f",
            str(DOCKERFILE),
            "-t",
            tag,
            "--build-arg",
            f"EXTRA_CA_CERTS={extra_ca_certs()}",
            str(REPO),
        ],
        capture_output=True,
        text=True,
        timeout=1200,
        env=env,
        check=False,
    )
    built = BuiltImage(tag, time.monotonic() - started)
    made = re.findall(r"^ ---> ([0-9a-f]{12})$", result.stdout, re.M)
    ids = {short[:12]: full for full in all_image_ids(api) - before for short in [full.removeprefix("sha256:")]}
    built.new_images = [ids[short] for short in made if short in ids]
    if result.returncode != 0:
        remove_image(api, built)
        raise AssertionError(f"docker build exited {result.returncode}:\n{result.stdout[-4000:]}\n{result.stderr}")
    return built


def remove_image(api: docker.APIClient, built: BuiltImage) -> None:
    """The tag, and every intermediate image the build made that nothing else uses."""
    with suppress(docker.errors.NotFound):
        api.remove_image(built.tag, force=True)
    for image in reversed(built.new_images):
        try:
            api.remove_image(image)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError:
            pass  # shared with another image (a `make image` build): it stays with that one


# ---- compose projects -----------------------------------------------------------------------


@dataclass
class ComposeProject:
    name: str
    compose_bin: str
    env_file: Path
    files: list[Path]
    down: subprocess.CompletedProcess[str] | None = None
    leftovers: list[str] = field(default_factory=list)

    def run(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        return compose(self.compose_bin, self.env_file, self.files, *args, project=self.name, timeout=timeout)


def project_resources(api: docker.APIClient, project: str) -> list[str]:
    """Containers, networks and volumes compose made for ``project``."""
    label = f"{COMPOSE_PROJECT_LABEL}={project}"
    found = [f"container {c['Id'][:12]}" for c in api.containers(all=True, filters={"label": label})]
    found += [f"network {n['Name']}" for n in api.networks(filters={"label": label})]
    found += [f"volume {v['Name']}" for v in (api.volumes(filters={"label": label}).get("Volumes") or [])]
    return found


@contextmanager
def compose_project(
    api: docker.APIClient, compose_bin: str, env_file: Path, files: list[Path], name: str
) -> Iterator[ComposeProject]:
    """``up -d`` on entry; ``down -v`` on exit whatever happened, then whatever it left is recorded
    in ``leftovers`` and removed by force."""
    project = ComposeProject(name, compose_bin, env_file, files)
    try:
        project.run("up", "-d", "--no-build")
        yield project
    finally:
        project.down = compose(
            compose_bin, env_file, files, "down", "-v", "--remove-orphans", "-t", "20", project=name, check=False
        )
        project.leftovers = project_resources(api, name)
        label = f"{COMPOSE_PROJECT_LABEL}={name}"
        for container in api.containers(all=True, filters={"label": label}):
            api.remove_container(container["Id"], force=True, v=True)
        for network in api.networks(filters={"label": label}):
            api.remove_network(network["Id"])
        for volume in api.volumes(filters={"label": label}).get("Volumes") or []:
            api.remove_volume(volume["Name"], force=True)


# ---- Prometheus -----------------------------------------------------------------------------


class Prometheus:
    """The prometheus binary on a free port, with its data in a temporary directory."""

    def __init__(self, binary: str, config: dict[str, Any]) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="packaging-prometheus-")
        root = Path(self._dir.name)
        (root / "prometheus.yml").write_text(json.dumps(config), encoding="utf-8")  # JSON is YAML
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = root / "prometheus.log"
        self._log = self.log.open("wb")
        self._process = subprocess.Popen(
            [
                binary,
                f"--config.file={root / 'prometheus.yml'}",
                f"--storage.tsdb.path={root / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def log_tail(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")[-3000:]

    def _ready(self) -> bool:
        if self._process.poll() is not None:
            raise AssertionError(f"prometheus exited {self._process.returncode}:\n{self.log_tail()}")
        try:
            return httpx.get(f"{self.url}/-/ready", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    def wait_ready(self, timeout: float = 30) -> None:
        wait_for(self._ready, timeout=timeout, interval=0.1, what="prometheus to be ready")

    def query(self, expr: str) -> list[dict[str, Any]]:
        response = httpx.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=10)
        body = response.json()
        if response.status_code != 200 or body.get("status") != "success":
            raise AssertionError(f"query {expr!r} failed: {response.status_code} {response.text[:500]}")
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def rules(self) -> list[dict[str, Any]]:
        body = httpx.get(f"{self.url}/api/v1/rules", timeout=10).json()
        return [rule for group in body["data"]["groups"] for rule in group["rules"]]

    def stop(self) -> None:
        try:
            if self._process.poll() is None:
                self._process.terminate()
                try:
                    self._process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    self._process.kill()
                    self._process.wait(timeout=15)
        finally:
            self._log.close()
            self._dir.cleanup()


@contextmanager
def running_prometheus(binary: str, config: dict[str, Any]) -> Iterator[Prometheus]:
    prometheus = Prometheus(binary, config)
    try:
        prometheus.wait_ready()
        yield prometheus
    finally:
        prometheus.stop()


def finite_series(result: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The series of an instant query whose value is a number (not NaN, not infinite)."""
    return [item for item in result if item["value"][1] not in ("NaN", "+Inf", "-Inf")]


# ---- the Grafana dashboard ------------------------------------------------------------------


def walk(node: Any, path: str = "$") -> Iterator[tuple[str, Any]]:
    """Every (path, value) pair under ``node``, dictionaries and lists included."""
    yield path, node
    if isinstance(node, dict):
        for key, value in node.items():
            yield from walk(value, f"{path}.{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from walk(value, f"{path}[{index}]")


def dashboard_expressions(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, PromQL) of every query target in the dashboard, rows' nested panels included."""
    found: list[tuple[str, str]] = []
    for _path, node in walk(dashboard):
        if isinstance(node, dict) and isinstance(node.get("targets"), list):
            found += [(str(node.get("title")), target["expr"]) for target in node["targets"] if "expr" in target]
    return found
