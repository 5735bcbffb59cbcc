"""Tar archives in and out of containers: base64 JSON and streamed raw tar (docs/protocol.md 3)."""

from __future__ import annotations

import hashlib
import io
import resource
import tarfile
import time
import uuid
from pathlib import Path

import httpx
import pytest

from docker_runner_client import HttpDockerRunnerClient, NotFound, StartedContainer, ValidationFailed
from docker_runner_client._signing import sign_headers
from tests.support.server import TEST_SECRET, RunningServer
from tests.support.signed import error_of, signed_request

pytestmark = pytest.mark.docker


def make_tar(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def read_tar(data: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        return {m.name: archive.extractfile(m).read() for m in archive.getmembers() if m.isfile()}  # type: ignore[union-attr]


def test_json_put_then_raw_get(client: HttpDockerRunnerClient, container: StartedContainer) -> None:
    """putArchive (base64) extracts at the path; the raw GET returns the same bytes as a tar."""
    client.put_archive(container.container_id, "/tmp", make_tar({"dir/a.txt": b"alpha", "b.bin": bytes(range(256))}))
    assert client.exec_run(container.container_id, "cat /tmp/dir/a.txt").stdout == "alpha"
    assert read_tar(client.get_archive(container.container_id, "/tmp/b.bin")) == {"b.bin": bytes(range(256))}


class _PatternReader(io.RawIOBase):
    """``size`` bytes of a repeating non-trivial pattern, produced on the fly and hashed as read."""

    def __init__(self, size: int) -> None:
        self._left = size
        self._block = hashlib.sha512(b"seed").digest() * 1024
        self.digest = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        count = min(len(buffer), self._left, len(self._block))
        buffer[:count] = self._block[:count]
        self.digest.update(self._block[:count])
        self._left -= count
        return count


def _member_sha256(tar_path: Path, name: str) -> str:
    with tarfile.open(tar_path) as archive:
        member = archive.extractfile(name)
        assert member is not None
        digest = hashlib.sha256()
        while chunk := member.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def test_streamed_round_trip_of_a_large_file(
    client: HttpDockerRunnerClient, container: StartedContainer, tmp_path: Path
) -> None:
    """A 96 MiB tar goes up and comes back streamed: intact, and without the process holding it."""
    size = 96 * 1024 * 1024
    source = _PatternReader(size)
    upload = tmp_path / "up.tar"
    with tarfile.open(upload, "w") as archive:
        info = tarfile.TarInfo("big.bin")
        info.size = size
        archive.addfile(info, io.BufferedReader(source, 1 << 20))
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    client.upload_archive(container.container_id, "/tmp", upload)
    checksum = client.exec_run(container.container_id, "sha256sum /tmp/big.bin").stdout.split()[0]
    assert checksum == source.digest.hexdigest()
    download = tmp_path / "down.tar"
    with download.open("wb") as sink:
        written = client.download_archive(container.container_id, "/tmp/big.bin", sink)
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before) / 1024
    assert written == download.stat().st_size > size
    assert _member_sha256(download, "big.bin") == source.digest.hexdigest()
    assert grown_mib < 32, f"the round trip grew the process by {grown_mib:.0f} MiB"


def test_archive_errors(client: HttpDockerRunnerClient, container: StartedContainer) -> None:
    """Missing paths and containers are 404 with the engine's message; bad base64 is 400."""
    with pytest.raises(NotFound) as no_path:
        client.get_archive(container.container_id, "/no/such/path")
    assert no_path.value.code == "no_such_path"
    assert no_path.value.message == f"Could not find the file /no/such/path in container {container.container_id}"
    with pytest.raises(NotFound) as no_dir:
        client.put_archive(container.container_id, "/no/such/dir", make_tar({"a": b"a"}))
    assert no_dir.value.code == "no_such_path" and "/no/such/dir" in no_dir.value.message
    with pytest.raises(NotFound) as missing:
        client.upload_archive("does-not-exist-xyz", "/tmp", make_tar({"a": b"a"}))
    assert missing.value.code == "no_such_container"


def test_bad_base64_names_the_field(runner: RunningServer, container: StartedContainer) -> None:
    """A payload that is not base64 is 400 naming payloadBase64."""
    body = {"containerId": container.container_id, "path": "/tmp", "payloadBase64": "not*base64"}
    response = signed_request(runner.url, "POST", "/v1/containers/putArchive", json_body=body)
    assert response.status_code == 400
    assert "payloadBase64" in error_of(response)["message"]


def test_raw_upload_signature_covers_the_bytes(runner: RunningServer, container: StartedContainer) -> None:
    """The raw tar's own bytes are what the signature covers: other bytes are refused."""
    target = f"/v1/containers/{container.container_id}/archive?path=/tmp"
    assert signed_request(runner.url, "PUT", target, content=make_tar({"x": b"1"})).status_code == 204
    timestamp = str(int(time.time() * 1000))
    headers = sign_headers(TEST_SECRET, "PUT", target, make_tar({"x": b"1"}), timestamp, str(uuid.uuid4()))
    forged = httpx.put(runner.url + target, content=make_tar({"x": b"2"}), headers=headers)
    assert error_of(forged)["code"] == "invalid_signature"


def test_validation_failed_is_raised_for_empty_path(
    client: HttpDockerRunnerClient, container: StartedContainer
) -> None:
    """An empty path is refused before the engine is asked."""
    with pytest.raises(ValidationFailed):
        client.get_archive(container.container_id, "")
