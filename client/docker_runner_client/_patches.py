"""Patches for test runs: what changed between a work directory and its pristine copy, as a tar."""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class FileChanges:
    """Files to send (relative path -> new content) and files to delete, relative to the work dir."""

    modified: dict[str, bytes] = field(default_factory=dict)
    removed: list[str] = field(default_factory=list)


def _files(root: Path) -> Iterator[str]:
    for directory, _dirs, names in os.walk(root):
        for name in names:
            path = Path(directory, name)
            if path.is_file() and not path.is_symlink():
                yield path.relative_to(root).as_posix()


def changed_files(work_dir: str | os.PathLike[str], pristine_dir: str | os.PathLike[str]) -> FileChanges:
    """Compare a work directory with its pristine copy: only what changed travels."""
    work, pristine = Path(work_dir), Path(pristine_dir)
    before = set(_files(pristine))
    modified: dict[str, bytes] = {}
    for relative in sorted(_files(work)):
        content = (work / relative).read_bytes()
        if relative not in before or (pristine / relative).read_bytes() != content:
            modified[relative] = content
    removed = sorted(before - set(_files(work)))
    return FileChanges(modified=modified, removed=removed)


def tar_bytes(files: Mapping[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for path, content in sorted(files.items()):
            info = tarfile.TarInfo(path)
            info.size = len(content)
            info.mode = 0o755 if path.endswith(".sh") else 0o644
            archive.addfile(info, io.BytesIO(content))
    return buffer.getvalue()
