"""Patches for test runs: what changed between a work directory and its pristine copy, as a tar.

A changed file travels as a :class:`PatchFile` (its bytes, and its mode from the work directory),
a changed symlink as a :class:`PatchSymlink` (its target, as bytes): both are ``bytes``, so
``modified_files: Mapping[str, bytes]`` takes them as it takes plain content (sent as 0644, 0755
for ``.sh``). Symlinks travel only when they stay inside the tree; the runner checks that again.
"""

from __future__ import annotations

import io
import os
import posixpath
import stat
import tarfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path


class PatchFile(bytes):
    """A file's content, with the permission bits it has in the work directory."""

    mode: int

    def __new__(cls, content: bytes, mode: int = 0o644) -> PatchFile:
        instance = super().__new__(cls, content)
        instance.mode = stat.S_IMODE(mode)
        return instance


class PatchSymlink(bytes):
    """A symbolic link; the bytes are its target (relative, inside the tree)."""

    @property
    def target(self) -> str:
        return os.fsdecode(bytes(self))


@dataclass(frozen=True)
class FileChanges:
    """Files to send (relative path -> new content) and files to delete, relative to the work dir."""

    modified: dict[str, bytes] = field(default_factory=dict)
    removed: list[str] = field(default_factory=list)


def _entries(root: Path) -> Iterator[tuple[str, Path]]:
    """Regular files and symlinks under ``root`` (symlinked directories are not entered)."""
    for directory, dirs, names in os.walk(root):
        for name in [*names, *dirs]:
            path = Path(directory, name)
            if path.is_symlink() or (name in names and path.is_file()):
                yield path.relative_to(root).as_posix(), path


def _snapshot(relative: str, path: Path) -> bytes:
    """What travels for one entry: a PatchSymlink, or a PatchFile with its mode."""
    if path.is_symlink():
        target = os.readlink(path)
        inside = posixpath.normpath(posixpath.join(posixpath.dirname(relative), target))
        if target.startswith("/") or inside == ".." or inside.startswith("../"):
            raise ValueError(f"{relative} links to {target!r}, outside the work directory: it cannot travel")
        return PatchSymlink(os.fsencode(target))
    return PatchFile(path.read_bytes(), path.stat().st_mode)


def _same(before: Path, after: Path) -> bool:
    if before.is_symlink() or after.is_symlink():
        return before.is_symlink() and after.is_symlink() and os.readlink(before) == os.readlink(after)
    same_mode = stat.S_IMODE(before.stat().st_mode) == stat.S_IMODE(after.stat().st_mode)
    return same_mode and before.read_bytes() == after.read_bytes()


def changed_files(work_dir: str | os.PathLike[str], pristine_dir: str | os.PathLike[str]) -> FileChanges:
    """Compare a work directory with its pristine copy: only what changed travels (content, mode,
    a file turned symlink or back), and what is gone is listed for removal."""
    pristine = dict(_entries(Path(pristine_dir)))
    work = dict(_entries(Path(work_dir)))
    modified: dict[str, bytes] = {}
    for relative in sorted(work):
        if relative not in pristine or not _same(pristine[relative], work[relative]):
            modified[relative] = _snapshot(relative, work[relative])
    removed = sorted(set(pristine) - set(work))
    return FileChanges(modified=modified, removed=removed)


def _default_mode(path: str) -> int:
    return 0o755 if path.endswith(".sh") else 0o644


def tar_bytes(files: Mapping[str, bytes]) -> bytes:
    """The patch tar: symlinks as symlinks, files with their mode (PatchFile) or a default one."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for path, content in sorted(files.items()):
            info = tarfile.TarInfo(path)
            if isinstance(content, PatchSymlink):
                info.type, info.linkname, info.mode = tarfile.SYMTYPE, content.target, 0o777
                archive.addfile(info)
                continue
            info.size = len(content)
            info.mode = content.mode if isinstance(content, PatchFile) else _default_mode(path)
            archive.addfile(info, io.BytesIO(content))
    return buffer.getvalue()
