"""``cp``: files in and out of a container, as raw tar (PUT / GET /v1/containers/{id}/archive)."""

from __future__ import annotations

import argparse
import shutil
import sys
import tarfile
import tempfile
from pathlib import Path, PurePosixPath
from typing import IO

from .._client import HttpDockerRunnerClient
from . import args as values
from .commands import Commands, add_command
from .exits import CliError
from .output import emit_json

DESCRIPTION = """\
Copy between a container and here, as docker cp does:

  cp CONTAINER:PATH LOCAL   the file or directory PATH, to LOCAL (into it when it is a directory,
                            else as that name); with - as LOCAL, the raw tar goes to stdout
  cp LOCAL CONTAINER:DIR    the file or directory LOCAL, by its name, into the existing directory
                            DIR; with - as LOCAL, a tar read from stdin is extracted in DIR

A local path with a colon must start with ./ or /."""


def register(commands: Commands) -> None:
    copy = add_command(commands, "cp", _cp, "copy files in or out of a container (raw tar)", DESCRIPTION, raw=True)
    copy.add_argument("source", metavar="SRC")
    copy.add_argument("destination", metavar="DEST")


def _cp(client: HttpDockerRunnerClient, args: argparse.Namespace) -> int:
    source, destination = values.remote(args.source), values.remote(args.destination)
    if (source is None) == (destination is None):
        raise CliError("bad_argument", "cp copies between CONTAINER:PATH and a local path: exactly one of each")
    if source is not None:
        written = _download(client, *source, args.destination)
        direction = {"container": source[0], "path": source[1], "local": args.destination, "bytes": written}
    else:
        assert destination is not None
        written = _upload(client, args.source, *destination)
        direction = {"container": destination[0], "path": destination[1], "local": args.source, "bytes": written}
    if args.json:
        emit_json(direction)
    return 0


def _download(client: HttpDockerRunnerClient, container: str, path: str, local: str) -> int:
    if local == values.STDIN:
        written = client.download_archive(container, path, sys.stdout.buffer)
        sys.stdout.buffer.flush()
        return written
    with tempfile.TemporaryFile() as spool:
        written = client.download_archive(container, path, spool)
        spool.seek(0)
        extract(spool, Path(local))
    return written


def _upload(client: HttpDockerRunnerClient, local: str, container: str, path: str) -> int:
    with tempfile.TemporaryDirectory() as scratch:
        tar = Path(scratch, "upload.tar")
        with tar.open("wb") as spool:
            if local == values.STDIN:
                shutil.copyfileobj(sys.stdin.buffer, spool)
            else:
                pack(Path(local), spool)
        client.upload_archive(container, path, tar)
        return tar.stat().st_size


def pack(source: Path, into: IO[bytes]) -> None:
    """A file or directory as a tar whose top entry is its name."""
    if not source.exists() and not source.is_symlink():
        raise CliError("local_file", f"{source}: no such file or directory")
    with tarfile.open(fileobj=into, mode="w", format=tarfile.PAX_FORMAT) as archive:
        archive.add(source, arcname=source.resolve().name if source.name in ("", ".", "..") else source.name)


def renamed(name: str, new_top: str) -> str:
    """An archive path with its first component replaced: ``etc/passwd`` -> ``NEW/passwd`` (pure)."""
    parts = PurePosixPath(name).parts
    return str(PurePosixPath(new_top, *parts[1:])) if parts else new_top


def extract(archive: IO[bytes], destination: Path) -> None:
    """Extract the engine's tar of one path: into ``destination`` when it is a directory, else as
    ``destination`` itself. Nothing lands outside it: entries pass the ``data`` filter (no absolute
    paths, no escapes, no devices, no links out), symlinks the ``tar`` one (their targets kept)."""
    if destination.is_dir():
        target, new_top = destination, None
    else:
        target, new_top = destination.parent, destination.name
        target.mkdir(parents=True, exist_ok=True)

    def safe(member: tarfile.TarInfo, path: str) -> tarfile.TarInfo | None:
        if new_top is not None:
            linkname = renamed(member.linkname, new_top) if member.islnk() else member.linkname
            member = member.replace(name=renamed(member.name, new_top), linkname=linkname, deep=False)
        if member.issym():  # kept as it is, absolute or not, as docker cp does; nothing is
            return tarfile.tar_filter(member, path)  # written through it: the data filter checks
        return tarfile.data_filter(member, path)  # each later entry's real path

    try:
        with tarfile.open(fileobj=archive, mode="r|*") as tar:
            tar.extractall(target, filter=safe)
    except (tarfile.TarError, OSError) as exc:
        raise CliError("local_file", f"cannot extract into {destination}: {exc}") from None
