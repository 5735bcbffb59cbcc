"""A create whose answer is lost (the engine killed after making the container, the connection cut):
the container the runner makes for its own work has a name of its own, the removal queue is given
that name, and removing by it leaves nothing behind."""

from __future__ import annotations

import contextlib
import os
import socket
import tempfile
import threading
from collections.abc import Iterator

import docker
import docker.errors
import pytest
import requests

from docker_runner.containers.spec import ContainerOpts, build_create_body
from docker_runner.engine.removals import create_own, remove_if_present
from tests.support.docker_env import SESSION_LABELS, TEST_IMAGE

pytestmark = pytest.mark.docker

ENGINE_SOCKET = "/var/run/docker.sock"


class AnswerDroppingProxy:
    """A unix socket in front of the engine that passes every request on, and cuts the connection
    instead of passing on the answer to a container create (the engine did make the container)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(path)
        self._listener.listen(8)
        self._threads: list[threading.Thread] = []
        self._accepting = threading.Thread(target=self._accept, daemon=True)
        self._accepting.start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(client,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _serve(self, client: socket.socket) -> None:
        upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        upstream.connect(ENGINE_SOCKET)
        creating = threading.Event()

        def answers() -> None:
            with contextlib.suppress(OSError):
                while chunk := upstream.recv(65536):
                    if creating.is_set():
                        break  # the engine answered the create: that answer never arrives
                    client.sendall(chunk)
            with contextlib.suppress(OSError):
                client.shutdown(socket.SHUT_RDWR)
            client.close()

        thread = threading.Thread(target=answers, daemon=True)
        thread.start()
        with contextlib.suppress(OSError):
            while chunk := client.recv(65536):
                if b"/containers/create" in chunk:
                    creating.set()
                upstream.sendall(chunk)
        thread.join(timeout=30)
        upstream.close()

    def close(self) -> None:
        self._listener.close()
        for thread in self._threads:
            thread.join(timeout=30)


@pytest.fixture
def proxy() -> Iterator[AnswerDroppingProxy]:
    with tempfile.TemporaryDirectory() as directory:
        running = AnswerDroppingProxy(os.path.join(directory, "engine.sock"))
        try:
            yield running
        finally:
            running.close()


def test_a_create_whose_answer_is_lost_is_removed_by_its_name(
    proxy: AnswerDroppingProxy, docker_api: docker.APIClient
) -> None:
    cut = docker.APIClient(base_url=f"unix://{proxy.path}", version=docker_api.api_version, timeout=30)
    body = build_create_body(ContainerOpts(image=TEST_IMAGE, cmd=["sleep", "60"], labels=SESSION_LABELS), "lost")
    queued: list[str] = []
    try:
        with pytest.raises(requests.exceptions.ConnectionError):  # the connection cut before the answer
            create_own(cut, body, "run", queued.append)
    finally:
        cut.close()
    assert len(queued) == 1
    name = queued[0]
    assert name.startswith("docker-runner-run-")
    assert docker_api.inspect_container(name)["Name"] == f"/{name}"  # made, though its id never came back
    remove_if_present(docker_api, name)  # what the removal queue does with it
    with pytest.raises(docker.errors.NotFound):
        docker_api.inspect_container(name)


def test_a_refused_create_queues_nothing(docker_api: docker.APIClient) -> None:
    body = build_create_body(ContainerOpts(image="runner-test/no-such-image:0", labels=SESSION_LABELS), "lost")
    queued: list[str] = []
    with pytest.raises(docker.errors.ImageNotFound):
        create_own(docker_api, body, "run", queued.append)
    assert queued == []
