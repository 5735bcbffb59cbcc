"""The runner's HTTP clients: a pure core (configuration, signing, timeouts, retries, error
mapping) shared by the synchronous ``HttpDockerRunnerClient`` and the asynchronous
``AsyncHttpDockerRunnerClient``, which only do I/O."""

from __future__ import annotations

import hashlib
import os
import random
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import IO, Any, TypeVar

import anyio
import httpx
from httpx_sse import EventSource
from websockets.asyncio.client import connect as connect_websocket_async
from websockets.exceptions import InvalidHandshake, InvalidStatus
from websockets.sync.client import connect as connect_websocket

from . import _routes as routes
from ._exceptions import DockerRunnerError, RunnerTimeout, RunnerTransportError, error_from_response
from ._models import (
    ContainerOpts,
    DockerEvent,
    ExecOptions,
    ExecResult,
    Job,
    JobEvent,
    JobResources,
    LogChunk,
    ManagedContainer,
    PoolStats,
    RunResult,
    StartedContainer,
    TestResult,
    Ticket,
)
from ._patches import tar_bytes
from ._resume import EventsResume, JobEventsResume
from ._signing import (
    NONCE_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    body_hash,
    canonical_json_bytes,
    encode_body_digest,
    sign,
    signing_payload,
)
from ._sse import log_chunk
from ._ws import AsyncExecSession, ExecSession, refused_upgrade

T = TypeVar("T")

DEFAULT_URL = "http://127.0.0.1:7071"
DEFAULT_TIMEOUT_MS = 30_000
STREAM_READ_TIMEOUT_MS = 60_000  # several of the runner's 15 s pings: a silent stream is a dead one
EXEC_TIMEOUT_MARGIN_MS = 5_000
FILE_CHUNK_BYTES = 1 << 20


def exec_read_timeout_ms(default_ms: float, timeout_ms: int, idle_timeout_ms: int) -> float | None:
    """How long to wait for an exec's answer: the exec's own bound plus a margin, at least the
    default; ``None`` (wait for ever) when the exec itself is unbounded."""
    bound = max(timeout_ms, idle_timeout_ms)
    if bound <= 0:
        return None
    return max(default_ms, bound + EXEC_TIMEOUT_MARGIN_MS)


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    for chunk in _file_chunks(path):
        digest.update(chunk)
    return encode_body_digest(digest.digest())


class ClientCore:
    """Everything both clients share; no I/O but reading an upload's file for its hash."""

    def __init__(
        self,
        base_url: str | None,
        shared_secret: str | None,
        timeout_ms: float | None,
        max_retries: int,
        retry_backoff_ms: float,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        env = os.environ if environ is None else environ
        self.base_url = (base_url or env.get("DOCKER_RUNNER_URL") or DEFAULT_URL).rstrip("/")
        secret = shared_secret or env.get("DOCKER_RUNNER_SHARED_SECRET")
        if not secret:
            raise ValueError("no shared secret: pass shared_secret= or set DOCKER_RUNNER_SHARED_SECRET")
        self._secret = secret
        if timeout_ms is None:
            timeout_ms = float(env.get("DOCKER_RUNNER_TIMEOUT_MS") or DEFAULT_TIMEOUT_MS)
        if timeout_ms <= 0:
            raise ValueError("timeout_ms must be positive")
        self.timeout_ms = timeout_ms
        self.max_retries = max_retries
        self.retry_backoff_ms = retry_backoff_ms

    def timeout_for(self, call: routes.Call) -> httpx.Timeout:
        connect = self.timeout_ms / 1000
        if call.endless:
            return httpx.Timeout(max(self.timeout_ms, STREAM_READ_TIMEOUT_MS) / 1000, connect=connect)
        if call.exec_bounds_ms is None:
            return httpx.Timeout(connect)
        read_ms = exec_read_timeout_ms(self.timeout_ms, *call.exec_bounds_ms)
        return httpx.Timeout(None if read_ms is None else read_ms / 1000, connect=connect)

    def body_of(self, call: routes.Call) -> tuple[bytes | None, str]:
        """The bytes to send (None for a file, streamed by the caller) and their hash."""
        if call.json is not None:
            body = canonical_json_bytes(call.json)
            return body, body_hash(body)
        if isinstance(call.content, Path):
            return None, _file_sha256(call.content)
        body = call.content or b""
        return body, body_hash(body)

    def headers_for(self, call: routes.Call) -> dict[str, str]:
        headers = {"accept": "text/event-stream" if call.endless else "application/json", **call.headers}
        if call.json is not None:
            headers["content-type"] = routes.JSON_CONTENT_TYPE
        elif call.content_type:
            headers["content-type"] = call.content_type
        return headers

    def sign(self, request: httpx.Request, content_sha256: str) -> None:
        """Sign a built request over the exact target httpx will send; fresh for every attempt."""
        timestamp = str(int(time.time() * 1000))
        nonce = str(uuid.uuid4())
        target = request.url.raw_path.decode("ascii")
        payload = signing_payload(request.method, target, timestamp, nonce, content_sha256)
        request.headers[TIMESTAMP_HEADER] = timestamp
        request.headers[NONCE_HEADER] = nonce
        request.headers[SIGNATURE_HEADER] = sign(self._secret, payload)

    def websocket(self, target: str) -> tuple[str, dict[str, str]]:
        """The ws(s) URL of a target and the headers that sign its upgrade."""
        url = httpx.URL(self.base_url + target)
        ws_url = str(url.copy_with(scheme="wss" if url.scheme == "https" else "ws"))
        timestamp, nonce = str(int(time.time() * 1000)), str(uuid.uuid4())
        payload = signing_payload("GET", target, timestamp, nonce, body_hash(b""))
        headers = {TIMESTAMP_HEADER: timestamp, NONCE_HEADER: nonce, SIGNATURE_HEADER: sign(self._secret, payload)}
        return ws_url, headers

    def url(self, call: routes.Call) -> httpx.URL:
        return httpx.URL(self.base_url + call.path, params=dict(call.query) if call.query else None)

    def retry_delay(self, call: routes.Call, error: DockerRunnerError, attempt: int) -> float | None:
        """Seconds to wait before the next attempt, or None when this failure is final."""
        if not call.may_retry or not error.retryable or attempt >= self.max_retries:
            return None
        base: float = self.retry_backoff_ms / 1000 * (1 << attempt)
        return base * (0.5 + random.random() / 2)

    def reconnect_delay(self, attempt: int) -> float:
        return float(min(self.retry_backoff_ms / 1000 * (1 << min(attempt, 10)), 5.0))

    @staticmethod
    def parse(route: routes.Route[T], response: httpx.Response) -> T:
        try:
            return route.parse(response)
        except (ValueError, KeyError, TypeError) as exc:
            raise RunnerTransportError(
                f"unexpected answer from the runner to {route.call.method} {route.call.path}: {exc}",
                code="runner_invalid_response",
                retryable=False,
            ) from exc


@contextmanager
def transport_errors() -> Iterator[None]:
    """Translate httpx's failures into the client's tree: the one boundary where that happens."""
    try:
        yield
    except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
        raise RunnerTransportError(
            f"cannot reach the runner: {exc}", code="runner_unreachable", retryable=True
        ) from exc
    except httpx.PoolTimeout as exc:
        raise RunnerTimeout(f"no free connection to the runner: {exc}", code="runner_timeout", retryable=True) from exc
    except httpx.TimeoutException as exc:
        raise RunnerTimeout(
            f"the runner did not answer in time: {exc}", code="runner_timeout", retryable=False
        ) from exc
    except httpx.RemoteProtocolError as exc:
        raise RunnerTransportError(
            f"the runner broke the connection: {exc}", code="runner_protocol_error", retryable=False
        ) from exc
    except httpx.TransportError as exc:
        raise RunnerTransportError(
            f"connection to the runner failed: {exc}", code="runner_connection_error", retryable=False
        ) from exc


@contextmanager
def websocket_errors() -> Iterator[None]:
    """A refused upgrade raises like a REST answer with its status; no answer is a transport error."""
    try:
        yield
    except InvalidStatus as exc:
        raise refused_upgrade(exc) from exc
    except (OSError, TimeoutError, InvalidHandshake) as exc:
        raise RunnerTransportError(
            f"cannot open the exec WebSocket: {exc}", code="runner_unreachable", retryable=True
        ) from exc


def _milliseconds(seconds: float | None) -> int | None:
    return None if seconds is None else int(seconds * 1000)


def _file_chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as stream:
        while chunk := stream.read(FILE_CHUNK_BYTES):
            yield chunk


async def _async_file_chunks(path: Path) -> AsyncIterator[bytes]:
    async with await anyio.open_file(path, "rb") as stream:
        while chunk := await stream.read(FILE_CHUNK_BYTES):
            yield chunk


class HttpDockerRunnerClient:
    """Synchronous client of the runner. Arguments beat ``DOCKER_RUNNER_URL``,
    ``DOCKER_RUNNER_SHARED_SECRET`` and ``DOCKER_RUNNER_TIMEOUT_MS``."""

    def __init__(
        self,
        base_url: str | None = None,
        shared_secret: str | None = None,
        *,
        timeout_ms: float | None = None,
        max_retries: int = 2,
        retry_backoff_ms: float = 200,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._core = ClientCore(base_url, shared_secret, timeout_ms, max_retries, retry_backoff_ms)
        self._http = httpx.Client(transport=transport)

    @property
    def base_url(self) -> str:
        return self._core.base_url

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> HttpDockerRunnerClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _build(self, call: routes.Call) -> httpx.Request:
        body, digest = self._core.body_of(call)
        content = _file_chunks(call.content) if body is None and isinstance(call.content, Path) else body
        request = self._http.build_request(
            call.method,
            self._core.url(call),
            content=content,
            headers=self._core.headers_for(call),
            timeout=self._core.timeout_for(call),
        )
        self._core.sign(request, digest)
        return request

    def _send(self, call: routes.Call, *, stream: bool = False) -> httpx.Response:
        attempt = 0
        while True:
            try:
                with transport_errors():
                    response = self._http.send(self._build(call), stream=stream)
                    if response.is_error:
                        body = response.read()
                        response.close()
                        raise error_from_response(response.status_code, body)
                return response
            except DockerRunnerError as error:
                delay = self._core.retry_delay(call, error, attempt)
                if delay is None:
                    raise
                time.sleep(delay)
                attempt += 1

    def _run(self, route: routes.Route[T]) -> T:
        return self._core.parse(route, self._send(route.call))

    @contextmanager
    def _stream(self, call: routes.Call) -> Iterator[httpx.Response]:
        response = self._send(call, stream=True)
        try:
            yield response
        finally:
            response.close()

    def health(self) -> str:
        return self._run(routes.health())

    def ready(self) -> str:
        return self._run(routes.ready())

    def ensure_image(self, image: str, platform: str | None = None) -> None:
        self._run(routes.ensure_image(image, platform))

    def list_containers(
        self, *, all_containers: bool = False, labels: Mapping[str, str] | None = None
    ) -> list[ManagedContainer]:
        """The containers in the runner's scope (running ones unless ``all_containers``), oldest
        first, with their TTL and the seconds left of it [ext]; ``labels`` they all carry."""
        return self._run(routes.list_containers(all_containers, labels))

    def start_container(self, opts: ContainerOpts) -> StartedContainer:
        return self._run(routes.start_container(opts))

    def stop_container(self, container_id: str, timeout_sec: int | None = None) -> None:
        self._run(routes.stop_container(container_id, timeout_sec))

    def remove_container(self, container_id: str, *, force: bool = False, remove_volumes: bool = False) -> None:
        self._run(routes.remove_container(container_id, force, remove_volumes))

    def inspect_container(self, container_id: str) -> dict[str, Any]:
        return self._run(routes.inspect_container(container_id))

    def container_labels(self, container_id: str) -> dict[str, str]:
        return self._run(routes.container_labels(container_id))

    def container_networks(self, container_id: str) -> list[str]:
        return self._run(routes.container_networks(container_id))

    def find_by_labels(self, labels: Mapping[str, str], *, all_containers: bool = False) -> list[str]:
        return self._run(routes.find_by_labels(labels, all_containers))

    def list_by_volume(self, volume_name: str) -> list[str]:
        return self._run(routes.list_by_volume(volume_name))

    def touch_container(self, container_id: str) -> None:
        self._run(routes.touch_container(container_id))

    def put_archive(self, container_id: str, path: str, tar_bytes: bytes) -> None:
        self._run(routes.put_archive(container_id, path, tar_bytes))

    def upload_archive(self, container_id: str, path: str, tar: bytes | Path) -> None:
        self._run(routes.upload_archive(container_id, path, tar))

    def download_archive(self, container_id: str, path: str, dest: IO[bytes]) -> int:
        """Stream the tar of ``path`` into ``dest``; returns the number of bytes written."""
        written = 0
        with self._stream(routes.download_archive(container_id, path)) as response, transport_errors():
            for chunk in response.iter_bytes(FILE_CHUNK_BYTES):
                dest.write(chunk)
                written += len(chunk)
        return written

    def get_archive(self, container_id: str, path: str) -> bytes:
        with self._stream(routes.download_archive(container_id, path)) as response, transport_errors():
            return response.read()

    def remove_volume(self, volume_name: str, *, force: bool = False) -> None:
        self._run(routes.remove_volume(volume_name, force))

    def exec_run(self, container_id: str, command: str | list[str], options: ExecOptions | None = None) -> ExecResult:
        return self._run(routes.exec_run(container_id, command, options))

    def resize_exec(self, exec_id: str, cols: int, rows: int) -> None:
        self._run(routes.resize_exec(exec_id, cols, rows))

    def events(
        self,
        *,
        since: str | None = None,
        until: str | None = None,
        filters: Mapping[str, Any] | None = None,
        reconnect: bool = False,
        last_event_id: str | None = None,
    ) -> Iterator[DockerEvent]:
        """Engine events as they happen (containers only unless ``filters`` say otherwise). With
        ``reconnect``, a dropped stream (a lost connection, an error frame, and without ``until``
        any end) is opened again with backoff, signed afresh, and resumed where it stopped: after
        the last event by Last-Event-ID, or before any from ``since`` or the first connection."""
        resume = EventsResume(since, until, filters, last_event_id)
        while True:
            try:
                with self._stream(resume.call()) as response, transport_errors():
                    resume.connected(response)
                    for message in EventSource(response).iter_sse():
                        event = resume.take(message)
                        if event is not None:
                            yield event
                if not resume.resumes_after_end(reconnect):
                    return
            except DockerRunnerError as error:
                if not resume.resumes_after(error, reconnect):
                    raise
            time.sleep(resume.next_delay(self._core))

    def logs(
        self,
        container_id: str,
        *,
        follow: bool = True,
        since: str | None = None,
        tail: int | str | None = None,
        stdout: bool = True,
        stderr: bool = True,
        timestamps: bool = False,
    ) -> Iterator[LogChunk]:
        """A container's output, demultiplexed; ends when the read is complete or the container ends."""
        call = routes.logs(container_id, follow, since, tail, stdout, stderr, timestamps)
        with self._stream(call) as response, transport_errors():
            for message in EventSource(response).iter_sse():
                chunk = log_chunk(message)
                if chunk == "end":
                    return
                if chunk is not None:
                    yield chunk

    def ticket(self, path: str, ttl_ms: int | None = None) -> Ticket:
        """A single-use ticket a browser appends to ``path`` (exact path and query) to open it."""
        return self._run(routes.ticket(path, ttl_ms))

    def terminal_url(
        self,
        container_id: str,
        command: str | list[str] | None = None,
        *,
        workdir: str | None = None,
        env: Mapping[str, str] | None = None,
        ttl_ms: int | None = None,
    ) -> str:
        """A link to the runner's browser terminal (``/ui/terminal``, served with DOCKER_RUNNER_UI=true)
        on a tty exec of ``command`` (``/bin/sh`` when None); it opens one session, within ``ttl_ms``."""
        target = routes.terminal_target(container_id, command, workdir, env)
        return routes.terminal_page_url(self.base_url, self.ticket(target, ttl_ms))

    def run(
        self,
        image: str,
        command: str | list[str],
        *,
        stdin: bytes | None = None,
        files: Mapping[str, bytes] | None = None,
        workdir: str | None = None,
        timeout_ms: int | None = None,
    ) -> RunResult:
        """Run a command once in a fresh container of ``image`` (from its pool when it has one)."""
        return self._run(routes.run(image, command, stdin, files, workdir, timeout_ms))

    def run_tests(
        self,
        image: str,
        modified_files: Mapping[str, bytes],
        *,
        test_cmd: str | None = None,
        timeout: float | None = None,
        workdir: str | None = None,
        removed_files: Sequence[str] = (),
    ) -> TestResult:
        """Apply a patch (files by path relative to ``workdir``, and deletions) in a fresh container
        of ``image`` and run its tests; ``timeout`` in seconds (default 300, 0 for none)."""
        route = routes.run_tests(
            image, tar_bytes(modified_files), list(removed_files), test_cmd, _milliseconds(timeout), workdir
        )
        return self._run(route)

    def run_tests_tar(
        self,
        image: str,
        tar: bytes | Path,
        *,
        test_cmd: str | None = None,
        timeout: float | None = None,
        workdir: str | None = None,
        removed_files: Sequence[str] = (),
    ) -> TestResult:
        """``run_tests`` with a patch tar made elsewhere (plain, gzip, bzip2 or xz), sent as it is; a
        file is streamed from disk."""
        route = routes.run_tests(image, tar, list(removed_files), test_cmd, _milliseconds(timeout), workdir)
        return self._run(route)

    def pools(self) -> list[PoolStats]:
        """Per-pool figures: size, idle, in use, created, destroyed, health failures, acquisitions."""
        return self._run(routes.pools())

    def submit_job(
        self,
        image: str,
        input: Any,  # the job's input, as the API names it
        *,
        command: str | list[str] | None = None,
        env: Mapping[str, str] | None = None,
        resources: JobResources | None = None,
        timeout_ms: int | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> Job:
        """Start a job: a fresh container of ``image`` gets ``input`` (any JSON) on stdin as one line;
        follow it with :meth:`job_events`. Never retried (it would start twice)."""
        return self._run(routes.submit_job(image, input, command, env, resources, timeout_ms, labels))

    def job(self, job_id: str) -> Job:
        return self._run(routes.job(job_id))

    def jobs(self) -> list[Job]:
        """Running jobs and the most recent ended ones, newest first."""
        return self._run(routes.jobs())

    def cancel_job(self, job_id: str) -> Job:
        """Kill the job and remove its container; returns it ended (an ended job as it was)."""
        return self._run(routes.cancel_job(job_id))

    def job_events(
        self, job_id: str, *, last_event_id: int | None = None, reconnect: bool = False
    ) -> Iterator[JobEvent]:
        """The job's events from its start (or after ``last_event_id``), live; ends after the final
        ``JobUpdate``. With ``reconnect``, a dropped connection resumes after the last event seen."""
        resume = JobEventsResume(job_id, last_event_id)
        while True:
            try:
                with self._stream(resume.call()) as response, transport_errors():
                    for message in EventSource(response).iter_sse():
                        event = resume.take(message)
                        if event is not None:
                            yield event
                            if resume.finished:
                                return
                return
            except DockerRunnerError as error:
                if not resume.resumes_after(error, reconnect):
                    raise
            time.sleep(resume.next_delay(self._core))

    def open_exec(
        self,
        container_id: str,
        command: str | list[str],
        *,
        tty: bool = False,
        demux: bool = True,
        workdir: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> ExecSession:
        """Start an interactive exec; use the session as a context manager. Without a tty, stderr
        arrives as its own stream unless ``demux`` is False (then it is merged into stdout)."""
        target = routes.interactive_exec_target(container_id, command, tty, demux, workdir, env)
        url, headers = self._core.websocket(target)
        with websocket_errors():
            connection = connect_websocket(
                url, additional_headers=headers, open_timeout=self._core.timeout_ms / 1000, legacy=True
            )
        try:
            return ExecSession(connection)
        except BaseException:
            connection.close()
            raise


class AsyncHttpDockerRunnerClient:
    """Asynchronous client of the runner, with the same methods as ``HttpDockerRunnerClient``."""

    def __init__(
        self,
        base_url: str | None = None,
        shared_secret: str | None = None,
        *,
        timeout_ms: float | None = None,
        max_retries: int = 2,
        retry_backoff_ms: float = 200,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._core = ClientCore(base_url, shared_secret, timeout_ms, max_retries, retry_backoff_ms)
        self._http = httpx.AsyncClient(transport=transport)

    @property
    def base_url(self) -> str:
        return self._core.base_url

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncHttpDockerRunnerClient:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()

    def _build(self, call: routes.Call) -> httpx.Request:
        body, digest = self._core.body_of(call)
        content = _async_file_chunks(call.content) if body is None and isinstance(call.content, Path) else body
        request = self._http.build_request(
            call.method,
            self._core.url(call),
            content=content,
            headers=self._core.headers_for(call),
            timeout=self._core.timeout_for(call),
        )
        self._core.sign(request, digest)
        return request

    async def _send(self, call: routes.Call, *, stream: bool = False) -> httpx.Response:
        attempt = 0
        while True:
            try:
                with transport_errors():
                    response = await self._http.send(self._build(call), stream=stream)
                    if response.is_error:
                        body = await response.aread()
                        await response.aclose()
                        raise error_from_response(response.status_code, body)
                return response
            except DockerRunnerError as error:
                delay = self._core.retry_delay(call, error, attempt)
                if delay is None:
                    raise
                await anyio.sleep(delay)
                attempt += 1

    async def _run(self, route: routes.Route[T]) -> T:
        return self._core.parse(route, await self._send(route.call))

    @asynccontextmanager
    async def _stream(self, call: routes.Call) -> AsyncIterator[httpx.Response]:
        response = await self._send(call, stream=True)
        try:
            yield response
        finally:
            await response.aclose()

    async def health(self) -> str:
        return await self._run(routes.health())

    async def ready(self) -> str:
        return await self._run(routes.ready())

    async def ensure_image(self, image: str, platform: str | None = None) -> None:
        await self._run(routes.ensure_image(image, platform))

    async def list_containers(
        self, *, all_containers: bool = False, labels: Mapping[str, str] | None = None
    ) -> list[ManagedContainer]:
        """See ``HttpDockerRunnerClient.list_containers``."""
        return await self._run(routes.list_containers(all_containers, labels))

    async def start_container(self, opts: ContainerOpts) -> StartedContainer:
        return await self._run(routes.start_container(opts))

    async def stop_container(self, container_id: str, timeout_sec: int | None = None) -> None:
        await self._run(routes.stop_container(container_id, timeout_sec))

    async def remove_container(self, container_id: str, *, force: bool = False, remove_volumes: bool = False) -> None:
        await self._run(routes.remove_container(container_id, force, remove_volumes))

    async def inspect_container(self, container_id: str) -> dict[str, Any]:
        return await self._run(routes.inspect_container(container_id))

    async def container_labels(self, container_id: str) -> dict[str, str]:
        return await self._run(routes.container_labels(container_id))

    async def container_networks(self, container_id: str) -> list[str]:
        return await self._run(routes.container_networks(container_id))

    async def find_by_labels(self, labels: Mapping[str, str], *, all_containers: bool = False) -> list[str]:
        return await self._run(routes.find_by_labels(labels, all_containers))

    async def list_by_volume(self, volume_name: str) -> list[str]:
        return await self._run(routes.list_by_volume(volume_name))

    async def touch_container(self, container_id: str) -> None:
        await self._run(routes.touch_container(container_id))

    async def put_archive(self, container_id: str, path: str, tar_bytes: bytes) -> None:
        await self._run(routes.put_archive(container_id, path, tar_bytes))

    async def upload_archive(self, container_id: str, path: str, tar: bytes | Path) -> None:
        await self._run(routes.upload_archive(container_id, path, tar))

    async def download_archive(self, container_id: str, path: str, dest: IO[bytes]) -> int:
        """Stream the tar of ``path`` into ``dest``; returns the number of bytes written."""
        written = 0
        async with self._stream(routes.download_archive(container_id, path)) as response:
            with transport_errors():
                async for chunk in response.aiter_bytes(FILE_CHUNK_BYTES):
                    dest.write(chunk)
                    written += len(chunk)
        return written

    async def get_archive(self, container_id: str, path: str) -> bytes:
        async with self._stream(routes.download_archive(container_id, path)) as response:
            with transport_errors():
                return await response.aread()

    async def remove_volume(self, volume_name: str, *, force: bool = False) -> None:
        await self._run(routes.remove_volume(volume_name, force))

    async def exec_run(
        self, container_id: str, command: str | list[str], options: ExecOptions | None = None
    ) -> ExecResult:
        return await self._run(routes.exec_run(container_id, command, options))

    async def resize_exec(self, exec_id: str, cols: int, rows: int) -> None:
        await self._run(routes.resize_exec(exec_id, cols, rows))

    async def events(
        self,
        *,
        since: str | None = None,
        until: str | None = None,
        filters: Mapping[str, Any] | None = None,
        reconnect: bool = False,
        last_event_id: str | None = None,
    ) -> AsyncIterator[DockerEvent]:
        """Engine events as they happen; see ``HttpDockerRunnerClient.events``."""
        resume = EventsResume(since, until, filters, last_event_id)
        while True:
            try:
                async with self._stream(resume.call()) as response:
                    resume.connected(response)
                    with transport_errors():
                        async for message in EventSource(response).aiter_sse():
                            event = resume.take(message)
                            if event is not None:
                                yield event
                if not resume.resumes_after_end(reconnect):
                    return
            except DockerRunnerError as error:
                if not resume.resumes_after(error, reconnect):
                    raise
            await anyio.sleep(resume.next_delay(self._core))

    async def logs(
        self,
        container_id: str,
        *,
        follow: bool = True,
        since: str | None = None,
        tail: int | str | None = None,
        stdout: bool = True,
        stderr: bool = True,
        timestamps: bool = False,
    ) -> AsyncIterator[LogChunk]:
        """A container's output, demultiplexed; see ``HttpDockerRunnerClient.logs``."""
        call = routes.logs(container_id, follow, since, tail, stdout, stderr, timestamps)
        async with self._stream(call) as response:
            with transport_errors():
                async for message in EventSource(response).aiter_sse():
                    chunk = log_chunk(message)
                    if chunk == "end":
                        return
                    if chunk is not None:
                        yield chunk

    async def ticket(self, path: str, ttl_ms: int | None = None) -> Ticket:
        return await self._run(routes.ticket(path, ttl_ms))

    async def terminal_url(
        self,
        container_id: str,
        command: str | list[str] | None = None,
        *,
        workdir: str | None = None,
        env: Mapping[str, str] | None = None,
        ttl_ms: int | None = None,
    ) -> str:
        target = routes.terminal_target(container_id, command, workdir, env)
        return routes.terminal_page_url(self.base_url, await self.ticket(target, ttl_ms))

    async def run(
        self,
        image: str,
        command: str | list[str],
        *,
        stdin: bytes | None = None,
        files: Mapping[str, bytes] | None = None,
        workdir: str | None = None,
        timeout_ms: int | None = None,
    ) -> RunResult:
        """Run a command once in a fresh container of ``image`` (from its pool when it has one)."""
        return await self._run(routes.run(image, command, stdin, files, workdir, timeout_ms))

    async def run_tests(
        self,
        image: str,
        modified_files: Mapping[str, bytes],
        *,
        test_cmd: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - the tests' own bound, sent to the runner
        workdir: str | None = None,
        removed_files: Sequence[str] = (),
    ) -> TestResult:
        """Apply a patch (files by path relative to ``workdir``, and deletions) in a fresh container
        of ``image`` and run its tests; ``timeout`` in seconds (default 300, 0 for none)."""
        route = routes.run_tests(
            image, tar_bytes(modified_files), list(removed_files), test_cmd, _milliseconds(timeout), workdir
        )
        return await self._run(route)

    async def run_tests_tar(
        self,
        image: str,
        tar: bytes | Path,
        *,
        test_cmd: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - the tests' own bound, sent to the runner
        workdir: str | None = None,
        removed_files: Sequence[str] = (),
    ) -> TestResult:
        """See ``HttpDockerRunnerClient.run_tests_tar``."""
        route = routes.run_tests(image, tar, list(removed_files), test_cmd, _milliseconds(timeout), workdir)
        return await self._run(route)

    async def pools(self) -> list[PoolStats]:
        """Per-pool figures: size, idle, in use, created, destroyed, health failures, acquisitions."""
        return await self._run(routes.pools())

    async def submit_job(
        self,
        image: str,
        input: Any,  # the job's input, as the API names it
        *,
        command: str | list[str] | None = None,
        env: Mapping[str, str] | None = None,
        resources: JobResources | None = None,
        timeout_ms: int | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> Job:
        """Start a job; see ``HttpDockerRunnerClient.submit_job``."""
        return await self._run(routes.submit_job(image, input, command, env, resources, timeout_ms, labels))

    async def job(self, job_id: str) -> Job:
        return await self._run(routes.job(job_id))

    async def jobs(self) -> list[Job]:
        """Running jobs and the most recent ended ones, newest first."""
        return await self._run(routes.jobs())

    async def cancel_job(self, job_id: str) -> Job:
        """Kill the job and remove its container; returns it ended (an ended job as it was)."""
        return await self._run(routes.cancel_job(job_id))

    async def job_events(
        self, job_id: str, *, last_event_id: int | None = None, reconnect: bool = False
    ) -> AsyncIterator[JobEvent]:
        """The job's events; see ``HttpDockerRunnerClient.job_events``."""
        resume = JobEventsResume(job_id, last_event_id)
        while True:
            try:
                async with self._stream(resume.call()) as response:
                    with transport_errors():
                        async for message in EventSource(response).aiter_sse():
                            event = resume.take(message)
                            if event is not None:
                                yield event
                                if resume.finished:
                                    return
                return
            except DockerRunnerError as error:
                if not resume.resumes_after(error, reconnect):
                    raise
            await anyio.sleep(resume.next_delay(self._core))

    async def open_exec(
        self,
        container_id: str,
        command: str | list[str],
        *,
        tty: bool = False,
        demux: bool = True,
        workdir: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> AsyncExecSession:
        """Start an interactive exec; use the session as an async context manager."""
        target = routes.interactive_exec_target(container_id, command, tty, demux, workdir, env)
        url, headers = self._core.websocket(target)
        with websocket_errors():
            connection = await connect_websocket_async(
                url, additional_headers=headers, open_timeout=self._core.timeout_ms / 1000
            )
        try:
            return await AsyncExecSession(connection)._started()
        except BaseException:
            await connection.close()
            raise
