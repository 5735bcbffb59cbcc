"""Patch archives checked before they reach a container: re-rooting, links, headers, bombs (pure)."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import tarfile
import tracemalloc
from collections.abc import Callable
from typing import IO

import pytest

from docker_runner.errors import ApiError
from docker_runner.protocol.patch_tar import MAX_HEADER_BYTES, checked_removals, rewrite_patch
from docker_runner.workloads.runs import patch_refusals

Entry = tuple[tarfile.TarInfo, bytes]


def _member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "", data: bytes = b"", mode: int = 0o644) -> Entry:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.size, info.mode = kind, link, len(data), mode
    return info, data


def _file(name: str, data: bytes = b"x", **pax: str) -> Entry:
    info, content = _member(name, data=data)
    info.pax_headers = dict(pax)
    return info, content


def _link(name: str, target: str) -> Entry:
    return _member(name, tarfile.SYMTYPE, target)


def _tar(*entries: Entry, compression: str = "") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=f"w:{compression}", format=tarfile.PAX_FORMAT) as archive:
        for info, data in entries:
            archive.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return buffer.getvalue()


def _rewrite(tar: bytes, max_bytes: int = 1 << 30, workdir: str = "/testbed") -> list[tuple[tarfile.TarInfo, bytes]]:
    out = rewrite_patch(io.BytesIO(tar), workdir, "body", max_bytes)
    with out, tarfile.open(fileobj=out, mode="r:") as rooted:
        return [(member, _content(rooted.extractfile(member) if member.isreg() else None)) for member in rooted]


def _content(data: IO[bytes] | None) -> bytes:
    return b"" if data is None else data.read()


def _refusal(tar: bytes, max_bytes: int = 1 << 30) -> ApiError:
    with pytest.raises(ApiError) as caught, patch_refusals():
        rewrite_patch(io.BytesIO(tar), "/testbed", "body", max_bytes)
    assert (caught.value.status, caught.value.code) == (400, "validation_error")
    return caught.value


def test_entries_are_rerooted_with_their_content_and_mode() -> None:
    """Every entry lands under the work directory, content and mode kept; `./` itself is left alone."""
    tar = _tar(
        _member("./", tarfile.DIRTYPE, mode=0o700),
        _member("./run_tests.sh", data=b"echo ok\n", mode=0o755),
        _member("pkg", tarfile.DIRTYPE),
        _file("pkg/mod.py", b"new"),
        _link("pkg/alias.py", "mod.py"),
    )
    rooted = _rewrite(tar)
    assert [(m.name, m.type, m.mode, m.linkname, data) for m, data in rooted] == [
        ("testbed/run_tests.sh", tarfile.REGTYPE, 0o755, "", b"echo ok\n"),
        ("testbed/pkg", tarfile.DIRTYPE, 0o644, "", b""),
        ("testbed/pkg/mod.py", tarfile.REGTYPE, 0o644, "", b"new"),
        ("testbed/pkg/alias.py", tarfile.SYMTYPE, 0o644, "mod.py", b""),
    ]


def test_hard_links_are_rewritten_to_the_rerooted_target() -> None:
    """A hard link names a path of the archive: its target moves under the work directory too."""
    (_, _), (link, _) = _rewrite(_tar(_file("a/file", b"data"), _member("h", tarfile.LNKTYPE, "./a/file")))
    assert (link.name, link.type, link.linkname) == ("testbed/h", tarfile.LNKTYPE, "testbed/a/file")
    assert "linkpath" not in link.pax_headers


def test_pax_path_records_cannot_undo_the_rerooting() -> None:
    """A pax ``path`` (every name past 100 bytes has one) must not take priority over the rewritten name."""
    long_name = "deep/" * 30 + "file.py"
    rooted = _rewrite(
        _tar(_file("etc/passwd", path="etc/passwd"), _file(long_name), _file("x", **{"SCHILY.xattr.a": "b"}))
    )
    assert [member.name for member, _ in rooted] == ["testbed/etc/passwd", f"testbed/{long_name}", "testbed/x"]
    assert all(not any(key.startswith("SCHILY") for key in member.pax_headers) for member, _ in rooted)


def test_hard_link_with_a_long_target_is_rerooted() -> None:
    """The long target travels in a pax ``linkpath``, regenerated from the rewritten target."""
    target = "long/" * 30 + "target"
    rooted = _rewrite(_tar(_file(target), _member("h", tarfile.LNKTYPE, target)))
    assert rooted[1][0].linkname == f"testbed/{target}"


CHAINED = {
    "file through a chained link": ([_link("a/b", ".."), _link("c", "a/b/.."), _file("c/etc/x")], "c/etc/x"),
    "link made hostile by a later link": ([_link("c", "a/b/.."), _link("a/b", "..")], "c"),
    "link through a link that leaves": ([_link("up", "../.."), _link("x", "up/etc")], "up"),
    "chain leaving by its last hop": ([_link("a", "b"), _link("b", "../outside")], "b"),
    "absolute link further down a chain": ([_link("a", "b/c"), _link("b/c", "/etc")], "b/c"),
    "file under a harmless link": ([_link("lib", "src"), _file("lib/mod.py")], "lib/mod.py"),
    "directory under a link": ([_link("d", "."), _member("d/sub", tarfile.DIRTYPE)], "d/sub"),
    "hard link through a link": ([_link("a/b", ".."), _member("h", tarfile.LNKTYPE, "a/b/x")], "h"),
    "hard link to a symlink": ([_link("deep/l", "../x"), _member("h", tarfile.LNKTYPE, "deep/l")], "h"),
    "symlink loop": ([_link("a", "b"), _link("b", "a"), _link("c", "a/x")], "a"),
}


@pytest.mark.parametrize("case", sorted(CHAINED))
def test_links_are_followed_through_the_links_the_archive_declares(case: str) -> None:
    """Each link alone stays inside; followed through the archive's other links, it does not."""
    entries, entry = CHAINED[case]
    error = _refusal(_tar(*entries))
    assert error.details["entry"] == entry and repr(entry) in error.message


def test_links_that_stay_inside_through_a_chain_are_accepted() -> None:
    """A chain that ends inside the work directory is fine, and a link replaced by a directory stops being one."""
    rooted = _rewrite(
        _tar(
            _link("a/b", "../d"),
            _link("c", "a/b/x"),
            _link("self", "."),
            _link("gone", ".."),
            _member("gone", tarfile.DIRTYPE),
            _file("gone/kept.txt"),
        )
    )
    assert [member.name for member, _ in rooted][-1] == "testbed/gone/kept.txt"


@pytest.mark.parametrize(
    ("entry", "why"),
    [
        (_link(".", "elsewhere"), "the work directory itself"),
        (_file("./."), "the work directory itself"),
        (_member("sparse", tarfile.GNUTYPE_SPARSE), "sparse"),
        (_member("chr", tarfile.CHRTYPE), "device node"),
        (_member("odd", b"Z"), "unsupported type"),
    ],
)
def test_entries_that_cannot_be_patched_are_refused(entry: Entry, why: str) -> None:
    """Named in the answer: what replaces the work directory, sparse files, devices, unknown types."""
    error = _refusal(_tar(entry))
    assert error.details["entry"] == entry[0].name and why in error.message


def test_headers_count_towards_the_size_limit() -> None:
    """Empty files still cost a 512-byte header each: the limit is on the bytes read, not on contents."""
    error = _refusal(_tar(*(_file(f"empty{index}", b"") for index in range(10))), max_bytes=3000)
    assert error.details["entry"] == "empty5" and "3000 bytes" in error.message


def test_an_oversized_file_is_refused_before_its_content_is_read() -> None:
    """The declared size decides: a 20 MB file is never decompressed against a 1000-byte limit."""
    tar = _tar(_file("big", b"\0" * 20_000_000), compression="gz")
    assert len(tar) < 100_000
    error = _refusal(tar, max_bytes=1000)
    assert error.details["entry"] == "big" and "1000 bytes" in error.message


def test_a_gzip_bomb_in_a_pax_header_is_refused_in_bounded_memory() -> None:
    """20 KB of gzip holding a 20 MB pax header: refused naming the header, without holding it in memory."""
    info, data = _file("innocent.txt", comment="x" * 20_000_000)
    tar = _tar((info, data), compression="gz")
    assert len(tar) < 100_000
    tracemalloc.start()
    try:
        error = _refusal(tar, max_bytes=1000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * 1024 * 1024, f"{peak} bytes held while refusing"
    assert "PaxHeader" in error.details["entry"] and f"limit {MAX_HEADER_BYTES}" in error.message


def test_a_huge_gnu_long_name_is_refused_before_it_is_read() -> None:
    """GNU long names are headers of their own: bounded like pax ones."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as archive:
        info, data = _file("n" * 200_000)
        archive.addfile(info, io.BytesIO(data))
    error = _refusal(buffer.getvalue())
    assert error.details["entry"] == "././@LongLink" and "200001 bytes" in error.message


def test_a_long_chain_of_extended_headers_is_refused() -> None:
    """Each header small, but headers without a member in between are bounded too."""
    header = _pax_block("comment", "x" * 100)
    tar = header * 20 + _tar(_file("after"))
    error = _refusal(tar)
    assert "extended headers in a row" in error.message


def test_global_headers_add_up_against_the_header_limit() -> None:
    """Global pax records accumulate for the whole archive: their total is bounded."""
    one_file = _tar(_file("f"))[: 2 * tarfile.BLOCKSIZE]  # header and data, no end-of-archive
    tar = b"".join(
        _pax_block(f"key{index}", "x" * 1000, kind=tarfile.XGLTYPE) + one_file
        for index in range(MAX_HEADER_BYTES // 1000 + 2)
    )
    error = _refusal(tar + b"\0" * 2 * tarfile.BLOCKSIZE)
    assert "extended header" in error.message


def _pax_block(key: str, value: str, kind: bytes = tarfile.XHDTYPE) -> bytes:
    """One raw pax header (header block + its record), as tarfile would write it."""
    body = len(key) + len(value) + 3  # " key=value\n"
    length = previous = 0
    while True:  # the record's length counts its own digits
        length = body + len(str(previous))
        if length == previous:
            break
        previous = length
    payload = f"{length} {key}={value}\n".encode()
    info = tarfile.TarInfo("././@PaxHeader")
    info.type, info.size = kind, len(payload)
    padding = b"\0" * (-len(payload) % tarfile.BLOCKSIZE)
    return info.tobuf(tarfile.USTAR_FORMAT) + payload + padding


@pytest.mark.parametrize(
    ("compress", "name"), [(gzip.compress, "gzip"), (bz2.compress, "bzip2"), (lzma.compress, "xz")]
)
def test_compressed_patches_are_accepted(compress: Callable[[bytes], bytes], name: str) -> None:
    """gzip, bzip2 and xz patches are decompressed as they are read."""
    tar = _tar(_file("a.txt", b"A" * 100_000), _file("b.txt", b"B"))
    rooted = _rewrite(compress(tar))
    assert [(member.name, len(data)) for member, data in rooted] == [("testbed/a.txt", 100_000), ("testbed/b.txt", 1)]


def test_a_corrupt_compressed_stream_is_a_400() -> None:
    """Garbage after a gzip magic is the client's mistake, said as such."""
    error = _refusal(b"\x1f\x8b" + b"garbage" * 100)
    assert "not a valid compressed stream" in error.message and error.details == {"field": "body"}


def test_removals_cannot_name_the_work_directory() -> None:
    """`rm -rf .` would fail in the container: refused up front, like `..`."""
    assert checked_removals("removePaths", ["c/", "./d"]) == ["c", "d"]
    with pytest.raises(ApiError) as caught, patch_refusals():
        checked_removals("removePaths", ["./"])
    assert caught.value.details == {"field": "removePaths", "entry": "./"}
