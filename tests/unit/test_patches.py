"""The client side of test runs (pure): what changed_files sends, the tar it becomes, and how
long the client waits for a run's answer."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from docker_runner.protocol.patch_tar import rewrite_patch
from docker_runner_client import _routes as routes
from docker_runner_client import changed_files
from docker_runner_client._client import ClientCore
from docker_runner_client._patches import PatchFile, PatchSymlink, tar_bytes


def _trees(tmp_path: Path) -> tuple[Path, Path]:
    pristine, work = tmp_path / "pristine", tmp_path / "work"
    for root in (pristine, work):
        (root / "pkg").mkdir(parents=True)
        (root / "same.py").write_text("unchanged")
        (root / "pkg" / "mod.py").write_text("old")
    return pristine, work


def test_changed_files_finds_what_travels(tmp_path: Path) -> None:
    """Only new and changed files travel; a deleted one is listed for removal."""
    pristine, work = _trees(tmp_path)
    (pristine / "gone.py").write_text("deleted later")
    (work / "pkg" / "mod.py").write_text("new")
    (work / "pkg" / "added.py").write_text("added")
    changes = changed_files(work, pristine)
    assert changes.modified == {"pkg/added.py": b"added", "pkg/mod.py": b"new"}
    assert changes.removed == ["gone.py"]


def test_modes_come_from_the_work_directory(tmp_path: Path) -> None:
    """A modified executable keeps its exec bit; a chmod alone is a change; nothing hangs on `.sh`."""
    pristine, work = _trees(tmp_path)
    for root in (pristine, work):
        (root / "tool").write_text("#!/bin/sh\necho old\n")
        (root / "tool").chmod(0o755)
        (root / "setup.sh").write_text("echo same\n")
    (work / "tool").write_text("#!/bin/sh\necho new\n")
    (work / "same.py").chmod(0o755)
    (work / "fresh.sh").write_text("echo not executable\n")
    modified = changed_files(work, pristine).modified
    modes = {path: content.mode for path, content in modified.items() if isinstance(content, PatchFile)}
    assert modes == {"fresh.sh": 0o644, "same.py": 0o755, "tool": 0o755} and set(modes) == set(modified)


def test_symlinks_travel_as_symlinks(tmp_path: Path) -> None:
    """A file turned symlink is sent as one (not only removed), links to directories too."""
    pristine, work = _trees(tmp_path)
    (pristine / "config.py").write_text("a file")
    (work / "config.py").symlink_to("pkg/mod.py")
    (work / "lib").symlink_to("pkg")
    (work / "pkg" / "up.py").symlink_to("../same.py")
    changes = changed_files(work, pristine)
    assert changes.removed == []
    links = {path: content for path, content in changes.modified.items() if isinstance(content, PatchSymlink)}
    assert {path: link.target for path, link in links.items()} == {
        "config.py": "pkg/mod.py",
        "lib": "pkg",
        "pkg/up.py": "../same.py",
    }
    assert set(changes.modified) == set(links), "the link's target was read as content"


def test_an_unchanged_link_does_not_travel_and_one_turned_file_does(tmp_path: Path) -> None:
    """Links compare by target; a link that became a file travels as that file."""
    pristine, work = _trees(tmp_path)
    for root in (pristine, work):
        (root / "kept").symlink_to("same.py")
    (pristine / "now_file").symlink_to("same.py")
    (work / "now_file").write_text("content")
    modified = changed_files(work, pristine).modified
    assert set(modified) == {"now_file"} and isinstance(modified["now_file"], PatchFile)


@pytest.mark.parametrize("target", ["/etc/passwd", "../../outside"])
def test_a_link_out_of_the_tree_cannot_travel(tmp_path: Path, target: str) -> None:
    """It would be refused by the runner anyway: said here, naming the path."""
    pristine, work = _trees(tmp_path)
    (work / "pkg" / "escape").symlink_to(target)
    with pytest.raises(ValueError, match="pkg/escape"):
        changed_files(work, pristine)


def test_the_tar_carries_modes_and_links_and_the_runner_accepts_it(tmp_path: Path) -> None:
    """Plain bytes keep their old defaults; PatchFile and PatchSymlink say more; the runner's checks pass."""
    files = {
        "run_tests.sh": b"echo plain\n",
        "data.txt": b"plain",
        "bin/tool": PatchFile(b"#!/bin/sh\n", 0o100755),
        "alias": PatchSymlink(os.fsencode("bin/tool")),
    }
    with tarfile.open(fileobj=io.BytesIO(tar_bytes(files))) as archive:
        entries = {member.name: (member.type, member.mode, member.linkname) for member in archive}
    assert entries == {
        "alias": (tarfile.SYMTYPE, 0o777, "bin/tool"),
        "bin/tool": (tarfile.REGTYPE, 0o755, ""),
        "data.txt": (tarfile.REGTYPE, 0o644, ""),
        "run_tests.sh": (tarfile.REGTYPE, 0o755, ""),
    }
    rooted = rewrite_patch(io.BytesIO(tar_bytes(files)), "/testbed", "body", 1 << 20)
    with rooted, tarfile.open(fileobj=rooted) as archive:
        assert sorted(archive.getnames()) == [
            "testbed/alias",
            "testbed/bin/tool",
            "testbed/data.txt",
            "testbed/run_tests.sh",
        ]


def _core() -> ClientCore:
    return ClientCore(None, None, 1000, 0, 0, environ={"DOCKER_RUNNER_SHARED_SECRET": "s" * 32})


def test_run_answers_are_awaited_past_the_pool_wait_and_the_container_start() -> None:
    """The read timeout is the run's timeout + 30 s of runner overhead (pool wait 10 s by default)
    + the client's 5 s margin, so a run that waited and then timed out is still answered."""
    core = _core()
    tests = core.timeout_for(routes.run_tests("img", b"", [], None, 1000, None).call)
    default_tests = core.timeout_for(routes.run_tests("img", b"", [], None, None, None).call)
    run = core.timeout_for(routes.run("img", "true", None, None, None, 2000).call)
    assert (tests.read, default_tests.read, run.read) == (36.0, 335.0, 37.0)
    assert routes.WORKLOAD_OVERHEAD_MS >= 10_000 + 5_000


def test_runs_without_a_timeout_have_no_read_timeout() -> None:
    """0 means no timeout on the runner, and so none here; a run without timeoutMs is unbounded too."""
    core = _core()
    assert core.timeout_for(routes.run_tests("img", b"", [], None, 0, None).call).read is None
    assert core.timeout_for(routes.run("img", "true", None, None, None, 0).call).read is None
    assert core.timeout_for(routes.run("img", "true", None, None, None, None).call).read is None
