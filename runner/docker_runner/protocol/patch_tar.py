"""Patch archives, checked before they reach a container (pure, streaming, bounded memory).

A patch tar is refused (``PatchRefused``, which the caller answers with a 400 naming the entry)
when an entry has an absolute path or ``..``, lies under a symlink the archive declared before it,
is a link whose target (followed through the symlinks the archive declares) leaves the work
directory, is a device node, FIFO or sparse file, or when the archive (headers included, after
decompression) is too large. Accepted archives are rewritten entry by entry, with fresh headers,
the work directory as a prefix: the engine extracts them at ``/`` and creates the directory
itself. Nothing of an input header (pax records included) reaches the output but the checked
name, link target, type, size, mode, owner and time.
"""

from __future__ import annotations

import bz2
import io
import lzma
import posixpath
import tarfile
import tempfile
import zlib
from collections import deque
from collections.abc import Iterable, Mapping
from typing import IO, Any, Protocol

SPOOL_MEMORY_BYTES = 1024 * 1024
MAX_HEADER_BYTES = 64 * 1024  # one pax or GNU long-name header; a path is at most 4 KiB on Linux
MAX_HEADER_CHAIN = 8  # extended headers in a row before a member
MAX_LINK_HOPS = 40  # the kernel's own limit on symlinks followed in one lookup
MAX_RESOLVE_STEPS = 1_000_000  # path components walked for all the links of one archive
READ_AHEAD_BYTES = 1024 * 1024  # what tarfile may read past the last header it checked
LZMA_MEMORY_BYTES = 64 * 1024 * 1024
CHUNK_BYTES = 64 * 1024
_EXTENDED_HEADERS = (
    tarfile.XHDTYPE,
    tarfile.XGLTYPE,
    tarfile.SOLARIS_XHDTYPE,
    tarfile.GNUTYPE_LONGNAME,
    tarfile.GNUTYPE_LONGLINK,
)
_DECOMPRESSION_ERRORS = (OSError, EOFError, lzma.LZMAError, zlib.error, ValueError)


class Refused(Exception):
    """An archive that must not reach a container: ``entry`` (when one is to blame) and why."""

    def __init__(self, entry: str | None, why: str) -> None:
        super().__init__(why)
        self.entry = entry
        self.why = why


class PatchRefused(ValueError):
    """The refusal the caller answers (400 ``validation_error``): the request ``field`` that carried
    the archive (or paths), the ``entry`` to blame when there is one, and why."""

    def __init__(self, field: str, entry: str | None, why: str) -> None:
        self.field = field
        self.entry = entry
        self.why = why
        super().__init__(self.message)

    @property
    def message(self) -> str:
        if self.entry is None:
            return f"{self.field}: the archive {self.why}"
        return f"{self.field}: entry {self.entry!r} {self.why}"

    @property
    def details(self) -> dict[str, str]:
        return {"field": self.field} if self.entry is None else {"field": self.field, "entry": self.entry}


def bad_entry(field: str, entry: str, why: str) -> PatchRefused:
    return PatchRefused(field, entry, why)


def bad_archive(field: str, why: str) -> PatchRefused:
    return PatchRefused(field, None, why)


def _normalized(name: str) -> str:
    """A member path that stays inside the work directory, normalised; Refused otherwise."""
    if not name or name.startswith("/") or "\\" in name:
        raise Refused(name, "must be a relative path")
    normalized = posixpath.normpath(name)
    if normalized == ".." or normalized.startswith("../") or "/../" in f"/{name}/":
        raise Refused(name, "leaves the work directory")
    if normalized == ".":
        raise Refused(name, "is the work directory itself")
    return normalized


def check_relative(field: str, name: str) -> str:
    """A member path that stays inside the work directory, normalised; 400 otherwise."""
    try:
        return _normalized(name)
    except Refused as refused:
        raise bad_entry(field, name, refused.why) from None


# -- reading: decompression and the byte budget ---------------------------------------------------


class _Reader(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class _Prefixed:
    """``head`` (already read to sniff the format), then the rest of ``source``."""

    def __init__(self, head: bytes, source: _Reader) -> None:
        self._head = head
        self._source = source

    def read(self, size: int = -1, /) -> bytes:
        if self._head:
            taken = self._head if size < 0 else self._head[:size]
            self._head = self._head[len(taken) :]
            return taken
        return self._source.read(size)


class _Decompressed:
    """A gzip, bzip2 or xz stream decompressed as it is read: at most ``size`` bytes per read."""

    def __init__(self, source: _Reader, decompressor: Any) -> None:
        self._source = source
        self._decompressor = decompressor
        self._tail = b""  # zlib's input not consumed yet (bz2 and lzma keep theirs themselves)
        self._source_done = False

    def read(self, size: int = -1, /) -> bytes:
        limit = size if size > 0 else CHUNK_BYTES
        try:
            while not self._decompressor.eof:
                data = self._next_input()
                out: bytes = self._decompressor.decompress(data, limit)
                self._tail = getattr(self._decompressor, "unconsumed_tail", b"")
                if out:
                    return out
                if self._source_done and not data and not self._tail:
                    break  # cut short: the tar reader says what is missing
        except _DECOMPRESSION_ERRORS as exc:
            raise Refused(None, f"is not a valid compressed stream ({exc})") from None
        return b""

    def _next_input(self) -> bytes:
        if self._tail:
            return self._tail
        if self._source_done or not getattr(self._decompressor, "needs_input", True):
            return b""  # what the decompressor holds comes out first
        data = self._source.read(CHUNK_BYTES)
        self._source_done = not data
        return data


def _decompressor_for(head: bytes) -> Any:
    if head.startswith(b"\x1f\x8b"):
        return zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    if head.startswith(b"BZh"):
        return bz2.BZ2Decompressor()
    if head.startswith(b"\xfd7zXZ\x00"):
        return lzma.LZMADecompressor(memlimit=LZMA_MEMORY_BYTES)
    return None


class _Budget:
    """Every byte the tar reader takes, counted; past ``limit`` the archive is refused."""

    def __init__(self, source: _Reader, limit: int, max_bytes: int) -> None:
        self._source = source
        self._limit = limit
        self._max_bytes = max_bytes
        self.taken = 0

    def read(self, size: int = -1, /) -> bytes:
        data = self._source.read(size if size >= 0 else CHUNK_BYTES)
        self.taken += len(data)
        if self.taken > self._limit:
            raise Refused(None, f"is larger than {self._max_bytes} bytes")
        return data


def _tar_stream(source: _Reader, max_bytes: int) -> _Budget:
    head = source.read(6)
    raw = _Prefixed(head, source)
    decompressor = _decompressor_for(head)
    plain: _Reader = raw if decompressor is None else _Decompressed(raw, decompressor)
    return _Budget(plain, max_bytes + READ_AHEAD_BYTES, max_bytes)


class _HeaderChain(tarfile.TarFile):
    """A tar reader that counts the extended headers met in a row (see _BoundedInfo)."""

    headers_in_row = 0


class _BoundedInfo(tarfile.TarInfo):
    """Refuses pax and GNU long-name headers past MAX_HEADER_BYTES *before* tarfile reads them whole."""

    def _proc_member(self, archive: tarfile.TarFile) -> tarfile.TarInfo:
        assert isinstance(archive, _HeaderChain)
        if self.type not in _EXTENDED_HEADERS:
            archive.headers_in_row = 0
        else:
            archive.headers_in_row += 1
            if archive.headers_in_row > MAX_HEADER_CHAIN:
                raise Refused(self.name, f"is one of more than {MAX_HEADER_CHAIN} extended headers in a row")
            held = 0
            if self.type == tarfile.XGLTYPE:  # global headers add up
                held = sum(len(key) + len(value) for key, value in archive.pax_headers.items())
            if self.size + held > MAX_HEADER_BYTES:
                raise Refused(self.name, f"has an extended header of {self.size} bytes (limit {MAX_HEADER_BYTES})")
        processed: tarfile.TarInfo = super()._proc_member(archive)  # type: ignore[misc]
        return processed


# -- links: where the archive's symlinks lead ----------------------------------------------------


class _Links:
    """The symlinks an archive declares, followed lexically the way the kernel follows them."""

    def __init__(self) -> None:
        self.targets: dict[str, str] = {}
        self._steps = 0

    def declared_above(self, path: str) -> str | None:
        """The first directory of ``path`` that is a symlink the archive declared, if any."""
        parts = path.split("/")
        for depth in range(1, len(parts)):
            prefix = "/".join(parts[:depth])
            if prefix in self.targets:
                return prefix
        return None

    def check_all(self) -> None:
        """Once the archive is read, with every link in place (a link declared later can change
        where an earlier one leads: ``c -> a/b/..`` before ``a/b -> ..``). Links that leave on
        their own are named first, then those that leave through the others."""
        for name, target in self.targets.items():
            alone = posixpath.normpath(posixpath.join(posixpath.dirname(name), target))
            if target.startswith("/") or alone == ".." or alone.startswith("../"):
                raise Refused(name, f"links to {target!r}, outside the work directory")
        for name, target in self.targets.items():
            if self._leaves(name, posixpath.dirname(name), target):
                raise Refused(name, f"links to {target!r}, which leads outside the work directory through other links")

    def _leaves(self, entry: str, directory: str, target: str) -> bool:
        """Does ``target``, read from ``directory``, end outside the work directory?"""
        if target.startswith("/"):
            return True
        pending = deque([*directory.split("/"), *target.split("/")])
        resolved: list[str] = []
        hops = 0
        while pending:
            self._count_step(entry)
            part = pending.popleft()
            if part in ("", "."):
                continue
            if part == "..":
                if not resolved:
                    return True
                resolved.pop()
                continue
            resolved.append(part)
            link = self.targets.get("/".join(resolved))
            if link is None:
                continue
            hops += 1
            if hops > MAX_LINK_HOPS:
                raise Refused(entry, "is part of a symlink loop")
            if link.startswith("/"):
                return True
            resolved.pop()
            pending.extendleft(reversed(link.split("/")))
        return False

    def _count_step(self, entry: str) -> None:
        self._steps += 1
        if self._steps > MAX_RESOLVE_STEPS:
            raise Refused(entry, "takes the archive's links past what can be checked")


# -- the rewrite -----------------------------------------------------------------------------------


def _refuse_kind(member: tarfile.TarInfo) -> None:
    if member.ischr() or member.isblk() or member.isfifo() or member.isdev():
        raise Refused(member.name, "is a device node or FIFO")
    if member.sparse is not None or member.type == tarfile.GNUTYPE_SPARSE:
        raise Refused(member.name, "is a sparse file")
    if not (member.isreg() or member.isdir() or member.issym() or member.islnk()):
        raise Refused(member.name, f"has an unsupported type {member.type!r}")


def _fresh_header(member: tarfile.TarInfo, name: str, linkname: str) -> tarfile.TarInfo:
    """Only what was checked, and the harmless rest: input pax records (``path``, ``linkpath``,
    xattrs) would take priority over the rewritten name and target."""
    header = tarfile.TarInfo(name)
    header.type = tarfile.REGTYPE if member.isreg() else member.type
    header.linkname = linkname
    header.size = member.size if member.isreg() else 0
    header.mode = member.mode
    header.mtime = member.mtime
    header.uid, header.gid = member.uid, member.gid
    header.uname, header.gname = member.uname, member.gname
    return header


class _Rewriter:
    """Checks one member at a time against what came before it, and re-roots it."""

    def __init__(self, root: str) -> None:
        self._root = root
        self.links = _Links()

    def _rooted(self, path: str) -> str:
        return posixpath.join(self._root, path) if self._root else path

    def header_for(self, member: tarfile.TarInfo) -> tarfile.TarInfo | None:
        """The output header of ``member``; None for the entry of the work directory itself."""
        _refuse_kind(member)
        if member.isdir() and member.name in (".", "./"):
            return None  # as `tar -C dir -c .` writes it: the work directory keeps its own mode and owner
        name = _normalized(member.name)
        above = self.links.declared_above(name)
        if above is not None:
            raise Refused(member.name, f"lies under {above!r}, a symlink of the archive")
        if member.issym():
            self.links.targets[name] = member.linkname
            return _fresh_header(member, self._rooted(name), member.linkname)
        self.links.targets.pop(name, None)  # the engine replaces what was there
        if member.islnk():
            return _fresh_header(member, self._rooted(name), self._rooted(self._hard_target(member)))
        return _fresh_header(member, self._rooted(name), "")

    def _hard_target(self, member: tarfile.TarInfo) -> str:
        """A hard link names another path of the work directory, reached through no symlink of the archive
        (and is no symlink itself: a hard-linked symlink would be read from another directory)."""
        try:
            target = _normalized(member.linkname)
        except Refused:
            raise Refused(member.name, f"links to {member.linkname!r}, outside the work directory") from None
        if target in self.links.targets or self.links.declared_above(target) is not None:
            raise Refused(member.name, f"is a hard link through a symlink of the archive ({member.linkname!r})")
        return target


def _copy_checked(source: _Reader, out: IO[bytes], root: str, max_bytes: int, max_entries: int) -> None:
    rewriter = _Rewriter(root)
    stream = _tar_stream(source, max_bytes)
    with (
        _HeaderChain.open(fileobj=stream, mode="r|", tarinfo=_BoundedInfo) as patch,  # type: ignore[call-overload]
        tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as rooted,
    ):
        count = 0
        while (member := patch.next()) is not None:
            patch.members.clear()  # streamed: the headers seen so far are not needed again
            count += 1
            if count > max_entries:
                raise Refused(member.name, f"is past the limit of {max_entries} entries")
            if patch.offset > max_bytes:  # headers, data and padding up to the end of this member
                raise Refused(member.name, f"takes the archive past {max_bytes} bytes")
            header = rewriter.header_for(member)
            if header is not None:
                rooted.addfile(header, patch.extractfile(member) if member.isreg() else None)
        rewriter.links.check_all()


def rewrite_patch(source: IO[bytes], workdir: str, field: str, max_bytes: int, max_entries: int = 100_000) -> IO[bytes]:
    """Check every entry of ``source`` (a tar, maybe gzip, bzip2 or xz) and return it re-rooted at
    ``workdir`` (a spooled file); 400 naming the entry, or the problem, otherwise."""
    root = posixpath.normpath("/" + workdir).lstrip("/")
    out: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY_BYTES)  # noqa: SIM115
    try:
        _copy_checked(source, out, root, max_bytes, max_entries)
    except Refused as refused:
        out.close()
        if refused.entry is None:
            raise bad_archive(field, refused.why) from None
        raise bad_entry(field, refused.entry, refused.why) from None
    except tarfile.TarError as exc:
        out.close()
        raise bad_archive(field, f"is not a valid tar archive ({exc})") from None
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
