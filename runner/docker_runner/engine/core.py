"""The one place that imports docker-py. Every blocking call leaves the event loop here.

Short calls (inspect, create, remove, ...) share one thread limiter; long ones (exec runs,
archive streams, event and log streams) have their own, so a burst of streams cannot starve
the short calls. docker-py's connection pool is sized to both together.

An SSE subscriber or an interactive session holds one token of the long budget for its whole
life (a :class:`StreamLease`), taken without waiting: when none is free the request is refused
at once (503 ``too_many_streams``) instead of hanging. The lease brings the stream its own
threads, so its reads and its stdin writes never queue behind other streams.
"""

from __future__ import annotations

import contextlib
import http.client
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar
from urllib.parse import quote

import anyio
import docker
import docker.errors
import requests
import requests.exceptions
import urllib3.exceptions
from docker.transport.unixconn import UnixHTTPConnection
from docker.types import CancellableStream
from docker.utils import kwargs_from_env
from urllib3.util.wait import wait_for_read

from ..errors import ApiError, Kind, docker_unavailable, from_engine
from ..settings import Settings
from .availability import PROBE_TIMEOUT_SECONDS, Availability
from .lean import LeanExecClient, connected_unix_socket, unix_socket_of
from .removals import Removals
from .streams import BlockingStream
from .threads import in_thread

T = TypeVar("T")
log = logging.getLogger("docker_runner.engine")

APIClient = docker.APIClient


def _unix_connect_closing_on_failure(self: UnixHTTPConnection) -> None:
    # docker-py 7 leaves the socket of a failed connect open until garbage collection: every
    # readiness probe against an absent engine would leak a descriptor for a while.
    self.sock = connected_unix_socket(self.unix_socket, self.timeout)


UnixHTTPConnection.connect = _unix_connect_closing_on_failure  # type: ignore[method-assign]


def _connected(self: UnixHTTPConnection) -> bool:
    # A pooled connection whose socket was closed under it (the engine restarted, a stream was cut)
    # has a descriptor of -1: urllib3's own check would raise ValueError out of the next request
    # instead of reading it as dropped, which makes the pool open a fresh connection.
    sock = self.sock
    if sock is None or sock.fileno() < 0:
        return False
    return not wait_for_read(sock, timeout=0.0)


UnixHTTPConnection.is_connected = property(_connected)  # type: ignore[assignment, method-assign]


class _ClosingAPIClient(docker.APIClient):
    """An APIClient that closes its session when construction fails (version negotiation with an
    absent engine), instead of leaving the socket to the garbage collector."""

    def __init__(self, **kwargs: Any) -> None:
        try:
            super().__init__(**kwargs)
        except BaseException:
            self.close()
            raise


@contextlib.contextmanager
def engine_errors() -> Iterator[None]:
    """Translate docker-py and transport failures into ApiError: the engine's only error boundary."""
    try:
        yield
    except ApiError:
        raise
    except docker.errors.APIError as exc:
        status = exc.status_code or 500
        explanation = exc.explanation
        if isinstance(explanation, bytes):
            explanation = explanation.decode("utf-8", "replace")
        raise from_engine(status, str(explanation or exc)) from exc
    except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
        raise docker_unavailable(type(exc).__name__) from exc
    except docker.errors.DockerException as exc:
        raise docker_unavailable(str(exc)) from exc
    except (ConnectionError, FileNotFoundError, TimeoutError, http.client.HTTPException) as exc:
        raise docker_unavailable(str(exc) or type(exc).__name__) from exc
    except (requests.exceptions.RequestException, urllib3.exceptions.HTTPError) as exc:
        raise docker_unavailable(f"{type(exc).__name__}: {exc}") from exc
    except ValueError as exc:
        if not _raised_by_transport(exc):
            raise
        raise docker_unavailable(f"the connection to the engine broke ({exc})") from exc


_TRANSPORT_MODULES = ("urllib3", "requests", "docker.transport", "http.client", "socket")


def _raised_by_transport(exc: BaseException) -> bool:
    """Was ``exc`` raised inside the HTTP stack (a connection in a bad state), not by our own code?"""
    traceback = exc.__traceback__
    while traceback is not None and traceback.tb_next is not None:
        traceback = traceback.tb_next
    module = "" if traceback is None else str(traceback.tb_frame.f_globals.get("__name__", ""))
    return module.startswith(_TRANSPORT_MODULES)


def _unreachable(error: ApiError) -> bool:
    """Did the engine fail to answer at all (not merely slowly: a busy engine is no lost one)?"""
    return not isinstance(error.__cause__, (requests.exceptions.ReadTimeout, TimeoutError))


def image_present(api: APIClient, image: str) -> bool:
    try:
        api.inspect_image(image)
    except docker.errors.NotFound:
        return False
    return True


def wait_exit(api: APIClient, container_id: str, poll_seconds: int = 30) -> int:
    """Block until the container is not running; its exit code. Long waits are asked again every
    ``poll_seconds``, so that no read timeout ends them."""
    while True:
        try:
            return int(api.wait(container_id, timeout=poll_seconds)["StatusCode"])
        except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError) as exc:
            if isinstance(exc, requests.exceptions.ConnectionError) and "timed out" not in str(exc).lower():
                raise


def volume_labels(api: APIClient, name: str) -> dict[str, str] | None:
    """A volume's labels, or None when there is no such volume."""
    try:
        document = api.inspect_volume(name)
    except docker.errors.NotFound:
        return None
    return dict(document.get("Labels") or {})


def container_running(api: APIClient, container_id: str) -> bool:
    """Is the container running? A container that is gone is not."""
    try:
        document = api.inspect_container(container_id)
    except docker.errors.NotFound:
        return False
    return bool((document.get("State") or {}).get("Running"))


def open_stream(api: APIClient, path: str, params: dict[str, Any]) -> requests.Response:
    """Start a streamed engine GET (events, logs, archives); the caller reads it (through an
    :class:`EngineStream`, or as archives do) and closes it, from any thread, to end it at once.
    An error answer raises with the engine's own message.

    docker-py's own streaming helpers hide the response (so an abandoned stream could not be
    released) or merge stdout and stderr; this asks the same endpoints through the client's
    public session interface."""
    response = api.get(
        f"{api.base_url}/v{api.api_version}{path}", params=params, stream=True, headers={"Accept-Encoding": "identity"}
    )
    try:
        response.raise_for_status()
    except requests.exceptions.HTTPError as exc:
        # docker-py takes the engine's message from the body: read it before closing the response
        with contextlib.suppress(requests.exceptions.RequestException):
            _ = response.content
        response.close()
        docker.errors.create_api_error_from_http_exception(exc)
    return response


class EngineStreamBroken(Exception):
    """The engine broke a streamed body off before its end (it went away, or restarted)."""


class EngineStream:
    """A streamed engine response read chunk by chunk, and closed from any thread.

    The engine ends a complete body properly (the last chunk of a chunked body): the chunks just
    end. A body broken off raises :class:`EngineStreamBroken`, unless we closed it ourselves."""

    def __init__(self, response: requests.Response) -> None:
        self._response = response
        self._closing = False

    def chunks(self, size: int = 64 * 1024) -> Iterator[bytes]:
        """What the engine has sent so far, chunk by chunk, without waiting for ``size`` bytes."""
        while True:
            try:
                chunk: bytes = self._response.raw.read1(size)
            except (AttributeError, ValueError, OSError, urllib3.exceptions.HTTPError) as exc:
                if self._closing:
                    return
                raise EngineStreamBroken(f"the engine broke the stream off: {exc}") from exc
            if not chunk:
                return
            yield chunk

    def close(self) -> None:
        self._closing = True
        close_stream(self._response)


def close_stream(response: requests.Response) -> None:
    """End a streamed response from any thread: shut its socket down (which wakes a reader blocked
    on it, as closing alone would not), then close it. docker-py's CancellableStream knows how."""
    with contextlib.suppress(Exception):
        CancellableStream(iter(()), response).close()
    response.close()


def container_path(container_id: str, tail: str) -> str:
    return f"/containers/{quote(container_id, safe='')}/{tail}"


def open_archive_response(api: APIClient, container_id: str, path: str) -> requests.Response:
    """Start reading a container path as a tar; the caller streams it and closes the response."""
    return open_stream(api, container_path(container_id, "archive"), {"path": path})


THREADS_PER_STREAM = 2  # a reader, and a writer for an interactive session's stdin


class StreamLease:
    """One token of the long-stream budget, held by one stream from its start to its end, and the
    stream's own threads."""

    def __init__(self, budget: anyio.CapacityLimiter) -> None:
        self._budget = budget
        self._released = False
        self.threads = anyio.CapacityLimiter(THREADS_PER_STREAM)
        try:
            budget.acquire_on_behalf_of_nowait(self)
        except anyio.WouldBlock:
            raise ApiError(
                Kind.UNAVAILABLE,
                "too_many_streams",
                f"All {int(budget.total_tokens)} stream slots are in use (DOCKER_RUNNER_STREAM_THREADS); retry shortly",
                retryable=True,
            ) from None

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._budget.release_on_behalf_of(self)


class Engine:
    """The Docker engine as the runner sees it: a lazily connected APIClient and two thread budgets."""

    def __init__(self, settings: Settings, on_error: Callable[[ApiError], None] | None = None) -> None:
        self._settings = settings
        self._on_error = on_error
        self._api: APIClient | None = None
        self._probe_api: APIClient | None = None
        self._connect_lock = threading.Lock()
        self.short_limiter = anyio.CapacityLimiter(settings.engine_threads)
        self.stream_limiter = anyio.CapacityLimiter(settings.stream_threads)
        self.availability = Availability(self._ping_bounded)
        self.removals = Removals(self.run)  # of the runner's own containers, retried until done
        socket_path = unix_socket_of(settings.docker_host)
        # exec runs' own three calls (engine/lean.py); None for an engine that is not on a unix socket
        self.lean = None if socket_path is None else LeanExecClient(socket_path, settings.docker_timeout_seconds)

    def _client(self, timeout_seconds: float, pool_size: int) -> APIClient:
        kwargs: dict[str, Any] = dict(kwargs_from_env())
        if self._settings.docker_host:
            kwargs["base_url"] = self._settings.docker_host
        version = self._api.api_version if self._api is not None else self._settings.docker_api_version
        with engine_errors():
            return _ClosingAPIClient(version=version, timeout=timeout_seconds, max_pool_size=pool_size, **kwargs)

    def api(self) -> APIClient:
        """The connected client; connects on first use so that the runner starts without a daemon."""
        if self._api is not None:
            return self._api
        with self._connect_lock:
            if self._api is None:
                pool_size = self._settings.engine_threads + self._settings.stream_threads
                self._api = self._client(self._settings.docker_timeout_seconds, pool_size)
            return self._api

    def _ping_bounded(self) -> None:
        """A ping that gives up after PROBE_TIMEOUT_SECONDS, on a client of its own (a restoring
        daemon accepts connections and does not answer)."""
        if self._probe_api is None:
            self._probe_api = self._client(PROBE_TIMEOUT_SECONDS, pool_size=2)
        with engine_errors():
            self._probe_api.ping()

    def _call(self, fn: Callable[[APIClient], T]) -> T:
        try:
            self.availability.check()
        except ApiError as error:
            self._count(error)
            raise
        try:
            with engine_errors():
                return fn(self.api())
        except ApiError as error:
            if error.code == "docker_unavailable" and _unreachable(error):
                self.availability.lost(error)
            self._count(error)
            raise

    def _count(self, error: ApiError) -> None:
        if self._on_error is not None and error.code != "not_modified":  # 304 is no failure
            self._on_error(error)

    def managed_count(self, label_filter: str) -> float | None:
        """How many containers carry ``label_filter`` (for a gauge), or None when the engine is away."""
        try:
            return float(
                len(self._call(lambda api: api.containers(all=True, quiet=True, filters={"label": label_filter})))
            )
        except ApiError:
            return None

    def reachable(self) -> float:
        try:
            self._call(lambda api: api.ping())
        except ApiError:
            return 0.0
        return 1.0

    async def run(self, fn: Callable[[APIClient], T]) -> T:
        """A short blocking engine call, off the event loop."""
        return await in_thread(self._call, fn, limiter=self.short_limiter)

    async def run_stream(self, fn: Callable[[APIClient], T], on_cancel: Callable[[], None] | None = None) -> T:
        """A long blocking call (an exec run, an archive stream), off the event loop on its own budget.

        With ``on_cancel``, a cancelled caller does not wait for the thread: ``on_cancel`` tells
        the thread to wind down (kill its exec, close its stream) and the caller moves on."""
        if on_cancel is None:
            return await in_thread(self._call, fn, limiter=self.stream_limiter)
        try:
            return await in_thread(self._call, fn, limiter=self.stream_limiter, abandon_on_cancel=True)
        except anyio.get_cancelled_exc_class():
            on_cancel()
            raise

    async def run_blocking(self, fn: Callable[[], T]) -> T:
        """Blocking work that is no engine call (a patch rewritten on disk), on the long budget."""
        return await in_thread(fn, limiter=self.stream_limiter)

    def lease_stream(self) -> StreamLease:
        """A token of the long-stream budget for a stream's life, or 503 ``too_many_streams`` now."""
        return StreamLease(self.stream_limiter)

    async def run_leased(self, lease: StreamLease, fn: Callable[[APIClient], T]) -> T:
        """A blocking engine call of a leased stream (its opening), on the stream's own threads."""
        return await in_thread(self._call, fn, limiter=lease.threads)

    async def describe(self) -> str:
        """``engine 20.10.24 (API 1.41)``, or why the engine does not answer (for the start-up line)."""
        try:
            version = await self.run(lambda api: api.version())
        except ApiError as error:
            return f"engine unreachable ({error.message})"
        return f"engine {version.get('Version', '?')} (API {version.get('ApiVersion', '?')})"

    async def ping(self) -> None:
        """Readiness: a bounded ping, which also tells the engine's return after an outage."""
        await in_thread(self.availability.probe, limiter=self.short_limiter)

    def close(self) -> None:
        for api in (self._api, self._probe_api):
            if api is not None:
                api.close()
        if self.lean is not None:
            self.lean.close()


async def open_leased_stream(engine: Engine, path: str, params: dict[str, Any]) -> BlockingStream:
    """Open a streamed engine GET (events, logs) on a lease of its own, now, so that its errors
    (the engine's, or 503 ``too_many_streams``) are ordinary error answers. Closing the stream
    gives the lease back."""
    lease = engine.lease_stream()
    try:
        response = await engine.run_leased(lease, lambda api: open_stream(api, path, params))
    except BaseException:
        lease.release()
        raise
    stream = EngineStream(response)
    return BlockingStream(stream.chunks(), stream.close, lease.threads, on_closed=lease.release)
