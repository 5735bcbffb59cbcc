"""Patch archives, checked before they reach a container (pure, streaming).

A patch tar is refused (400 naming the entry) when an entry has an absolute path or ``..``, a link
that points outside the work directory, is a device node or FIFO, or when the archive is too large.
Accepted archives are rewritten with the work directory as a prefix, so that the engine extracts
them at ``/`` and creates the directory itself.
"""

from __future__ import annotations

import io
import posixpath
import tarfile
import tempfile
from collections.abc import Iterable, Mapping
from typing import IO

from .errors import ApiError

SPOOL_MEMORY_BYTES = 1024 * 1024


def bad_entry(field: str, entry: str, why: str) -> ApiError:
    return ApiError(
        400, "validation_error", f"{field}: entry {entry!r} {why}", details={"field": field, "entry": entry}
    )


def check_relative(field: str, name: str) -> str:
    """A member path that stays inside the work directory, normalised; 400 otherwise."""
    if not name or name.startswith("/") or "\\" in name:
        raise bad_entry(field, name, "must be a relative path")
    normalized = posixpath.normpath(name)
    if normalized == ".." or normalized.startswith("../") or "/../" in f"/{name}/":
        raise bad_entry(field, name, "leaves the work directory")
    return normalized


def _check_link(field: str, member: tarfile.TarInfo, name: str) -> None:
    target = member.linkname
    if member.issym():
        resolved = posixpath.normpath(posixpath.join(posixpath.dirname(name), target))
    else:  # a hard link names another member of the archive
        resolved = posixpath.normpath(target)
    if target.startswith("/") or resolved == ".." or resolved.startswith("../"):
        raise bad_entry(field, member.name, f"links to {target!r}, outside the work directory")


def rewrite_patch(source: IO[bytes], workdir: str, field: str, max_bytes: int, max_entries: int = 100_000) -> IO[bytes]:
    """Check every entry of ``source`` and return it re-rooted at ``workdir`` (a spooled file)."""
    root = posixpath.normpath("/" + workdir).lstrip("/")
    out: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY_BYTES)  # noqa: SIM115
    total = 0
    try:
        with tarfile.open(fileobj=source, mode="r|*") as patch, tarfile.open(fileobj=out, mode="w|") as rooted:
            for count, member in enumerate(patch, start=1):
                if count > max_entries:
                    raise bad_entry(field, member.name, f"is past the limit of {max_entries} entries")
                name = check_relative(field, member.name)
                if member.ischr() or member.isblk() or member.isfifo() or member.isdev():
                    raise bad_entry(field, member.name, "is a device node or FIFO")
                if member.issym() or member.islnk():
                    _check_link(field, member, name)
                    member.linkname = member.linkname if member.issym() else posixpath.join(root, member.linkname)
                total += member.size
                if total > max_bytes:
                    raise bad_entry(field, member.name, f"takes the archive past {max_bytes} bytes")
                data = patch.extractfile(member) if member.isfile() else None
                member.name = posixpath.join(root, name) if root else name
                rooted.addfile(member, data)
    except tarfile.TarError as exc:
        out.close()
        raise ApiError(
            400, "validation_error", f"{field}: not a valid tar archive ({exc})", details={"field": field}
        ) from None
    except BaseException:
        out.close()
        raise
    out.seek(0)
    return out


def tar_of_files(files: Mapping[str, bytes], field: str, root: str = "/") -> IO[bytes]:
    """A tar of ``{relative path: content}`` rooted at ``root`` (to extract at ``/``), every path
    checked like a patch entry."""
    prefix = posixpath.normpath("/" + root).lstrip("/")
    out: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY_BYTES)  # noqa: SIM115
    try:
        with tarfile.open(fileobj=out, mode="w|") as archive:
            for path, content in files.items():
                info = tarfile.TarInfo(posixpath.join(prefix, check_relative(field, path)))
                info.size = len(content)
                info.mode = 0o644
                archive.addfile(info, io.BytesIO(content))
    except BaseException:
        out.close()
        raise
    out.seek(0)
    return out


def checked_removals(field: str, paths: Iterable[str]) -> list[str]:
    return [check_relative(field, path) for path in paths]
