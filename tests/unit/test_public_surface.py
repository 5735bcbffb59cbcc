"""The client's public surface is explicit: everything exported exists, nothing private leaks."""

from __future__ import annotations

import inspect

import docker_runner_client
from docker_runner_client import AsyncHttpDockerRunnerClient, HttpDockerRunnerClient, PatchFile, PatchSymlink


def test_all_is_sorted_and_complete() -> None:
    exported = docker_runner_client.__all__
    assert exported == sorted(exported)
    for name in exported:
        assert hasattr(docker_runner_client, name), name
    public = {name for name in dir(docker_runner_client) if not name.startswith("_")}
    assert public == set(exported)


def _public_methods(cls: type) -> dict[str, inspect.Signature]:
    return {
        name: inspect.signature(member)
        for name, member in inspect.getmembers(cls, inspect.isfunction)
        if not name.startswith("_") and name not in {"close", "aclose"}
    }


def test_sync_and_async_clients_have_the_same_methods() -> None:
    """Every method exists on both clients, with the same parameters."""
    sync_methods = _public_methods(HttpDockerRunnerClient)
    async_methods = _public_methods(AsyncHttpDockerRunnerClient)
    assert set(sync_methods) == set(async_methods)
    for name, signature in sync_methods.items():
        assert list(signature.parameters) == list(async_methods[name].parameters), name
        method = getattr(AsyncHttpDockerRunnerClient, name)
        assert inspect.iscoroutinefunction(method) or inspect.isasyncgenfunction(method), name


def test_jobs_are_part_of_the_surface() -> None:
    """The job methods and their typed events are public, on both clients."""
    for name in (
        "Job",
        "JobError",
        "JobEvent",
        "JobEventsDropped",
        "JobLog",
        "JobMessage",
        "JobResources",
        "JobUpdate",
    ):
        assert name in docker_runner_client.__all__, name
    for method in ("submit_job", "job", "jobs", "cancel_job", "job_events"):
        assert hasattr(HttpDockerRunnerClient, method) and hasattr(AsyncHttpDockerRunnerClient, method), method


def test_patch_entries_are_public_bytes() -> None:
    """changed_files' values can be built by hand: a file with its mode, a symlink with its target."""
    executable = PatchFile(b"#!/bin/sh\n", 0o100755)
    assert (executable, executable.mode) == (b"#!/bin/sh\n", 0o755)
    assert PatchSymlink(b"target").target == "target"


def test_container_listing_and_raw_patch_tars_are_part_of_the_surface() -> None:
    """list_containers (with its ManagedContainer) and run_tests_tar exist on both clients."""
    assert "ManagedContainer" in docker_runner_client.__all__
    for method in ("list_containers", "run_tests_tar"):
        assert hasattr(HttpDockerRunnerClient, method) and hasattr(AsyncHttpDockerRunnerClient, method), method
