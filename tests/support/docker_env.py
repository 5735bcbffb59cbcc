"""The real engine for tests: reachability, the test image, and the label that sweeps up after us."""

from __future__ import annotations

import os
import uuid

import docker
import docker.errors

TEST_IMAGE = os.environ.get("RUNNER_TEST_IMAGE", "runner-test/busybox:latest")
SESSION_LABEL = "dev.docker-runner.test-session"
SESSION_ID = uuid.uuid4().hex[:12]
SESSION_LABELS = {SESSION_LABEL: SESSION_ID}


def engine_problem() -> str | None:
    """Why the engine cannot be used, or None when it answers and has the test image."""
    try:
        api = docker.APIClient(version="auto", timeout=10)
    except docker.errors.DockerException as exc:
        return f"no Docker engine answers: {exc}"
    try:
        api.inspect_image(TEST_IMAGE)
    except docker.errors.DockerException:
        return f"the test image {TEST_IMAGE} is missing: run scripts/dev-engine.sh (make engine)"
    finally:
        api.close()
    return None


def sweep(api: docker.APIClient) -> int:
    """Remove every container this test session labelled."""
    removed = 0
    for item in api.containers(all=True, filters={"label": f"{SESSION_LABEL}={SESSION_ID}"}):
        try:
            api.remove_container(item["Id"], force=True, v=True)
            removed += 1
        except docker.errors.NotFound:
            pass
    return removed
