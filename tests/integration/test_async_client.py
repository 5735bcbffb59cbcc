"""The asynchronous client against a real runner: same methods, same results, same errors."""

from __future__ import annotations

import io
import tarfile
import time

import anyio
import pytest

from docker_runner_client import AsyncHttpDockerRunnerClient, ExecOptions, ExecTimeout, NotFound, RunnerTransportError
from tests.conftest import sleeper_opts
from tests.support.docker_env import SESSION_ID
from tests.support.server import TEST_SECRET, RunningServer

pytestmark = pytest.mark.docker


async def _scenario(url: str) -> None:
    async with AsyncHttpDockerRunnerClient(url, TEST_SECRET) as client:
        assert await client.health() == "ok"
        started = await client.start_container(sleeper_opts())
        try:
            assert (await client.inspect_container(started.container_id))["State"]["Running"]
            results = []

            async def run(index: int) -> None:
                results.append(await client.exec_run(started.container_id, f"echo {index}"))

            async with anyio.create_task_group() as group:
                for index in range(8):
                    group.start_soon(run, index)
            assert sorted(r.stdout for r in results) == [f"{i}\n" for i in range(8)]
            with pytest.raises(ExecTimeout):
                await client.exec_run(started.container_id, "sleep 5", ExecOptions(timeout_ms=200))
            buffer = io.BytesIO()
            with tarfile.open(fileobj=buffer, mode="w") as archive:
                info = tarfile.TarInfo("hello.txt")
                info.size = 5
                archive.addfile(info, io.BytesIO(b"hello"))
            await client.upload_archive(started.container_id, "/tmp", buffer.getvalue())
            assert len(await client.get_archive(started.container_id, "/tmp/hello.txt")) >= 512
        finally:
            await client.remove_container(started.container_id, force=True)
        with pytest.raises(NotFound):
            await client.inspect_container(started.container_id)


async def _streams(url: str) -> None:
    async with AsyncHttpDockerRunnerClient(url, TEST_SECRET) as client:
        started = await client.start_container(sleeper_opts(cmd=["sh", "-c", "echo a; echo b >&2"], auto_remove=False))
        try:
            chunks = [chunk async for chunk in client.logs(started.container_id)]
            assert sorted((c.stream, c.data) for c in chunks) == [("stderr", b"b\n"), ("stdout", b"a\n")]
            events = client.events(
                since=str(int(time.time()) - 30),
                until=str(int(time.time()) + 1),
                filters={"type": ["container"], "label": [f"dev.docker-runner.test-session={SESSION_ID}"]},
            )
            actions = [event.action async for event in events if event.actor_id == started.container_id]
            assert actions[:2] == ["create", "start"]
        finally:
            await client.remove_container(started.container_id, force=True)
        box = await client.start_container(sleeper_opts())
        try:
            async with await client.open_exec(box.container_id, ["cat"]) as session:
                await session.send(b"async hello")
                await session.close_stdin()
                assert b"".join([output.data async for output in session]) == b"async hello"
                assert session.exit_code == 0
                with pytest.raises(RunnerTransportError) as too_late:
                    with anyio.fail_after(10):
                        while True:  # until the runner's close frame has been read
                            await session.send(b"too late")
                            await anyio.sleep(0.02)
                assert too_late.value.code == "runner_session_closed"
        finally:
            await client.remove_container(box.container_id, force=True)


def test_async_streams_and_exec(runner: RunningServer) -> None:
    """logs, events and an interactive exec through the async client; a send after the end raises its error."""
    anyio.run(_streams, runner.url)


def test_async_client_end_to_end(runner: RunningServer) -> None:
    """Lifecycle, eight concurrent execs, a timeout and archives through the async client."""
    anyio.run(_scenario, runner.url)
