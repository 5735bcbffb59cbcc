"""Jobs: submit, look at, cancel, and follow their events (SSE)."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Request, delete, get, post
from litestar.params import HeaderParameter, JSONBody, PathParameter
from litestar.response import ServerSentEvent

from ...jobs import stream
from ...jobs.manager import Job, JobAnswer
from ...jobs.spec import JobRequest
from .. import sse
from ..dependencies import RuntimeDep
from ..forwarding import GATHERED, GATHERED_NEWEST_FIRST, LOCATED_BY, ON_A_MANAGER
from ..middleware import TICKETS_ACCEPTED
from ..observe import note
from ..openapi import errors
from ..placed_runs import placed_job

JobId = Annotated[str, PathParameter(min_length=1)]
SSE_MEDIA_TYPE = "text/event-stream"
BY_JOB = ("job", "job_id")  # cluster mode: the runner that follows the job answers


class JobList(msgspec.Struct):
    jobs: list[JobAnswer]


@post("/v1/jobs", status_code=201, responses=errors(), opt={ON_A_MANAGER: True})
async def submit_job(data: JSONBody[JobRequest], request: Request[Any, Any, Any], runtime: RuntimeDep) -> JobAnswer:
    """In cluster mode Swarm places the job (by its resources) and the runner of its node follows it."""
    note(request.scope, image=data.image)
    where = await placed_job(runtime, request, data)
    if where is not None and not isinstance(where, Job):
        return msgspec.convert(where, JobAnswer)  # another node's runner follows it
    job = where if where is not None else await runtime.jobs.submit(data)
    note(request.scope, jobId=job.job_id, containerId=job.container_id)
    return job.answer()


@get("/v1/jobs", responses=errors(), opt={GATHERED: "jobs", GATHERED_NEWEST_FIRST: "createdAt"})
async def list_jobs(runtime: RuntimeDep) -> JobList:
    """Running jobs and the most recent ended ones, newest first."""
    return JobList([job.answer() for job in runtime.jobs.recent()])


@get("/v1/jobs/{job_id:str}", responses=errors(), opt={LOCATED_BY: BY_JOB})
async def get_job(job_id: JobId, runtime: RuntimeDep) -> JobAnswer:
    return runtime.jobs.get(job_id).answer()


@delete("/v1/jobs/{job_id:str}", status_code=200, responses=errors(), opt={LOCATED_BY: BY_JOB})
async def cancel_job(job_id: JobId, runtime: RuntimeDep) -> JobAnswer:
    """Kill and remove the job's container; answers the job once it has ended (an ended job as it is)."""
    job = await runtime.jobs.cancel(job_id)
    return job.answer()


@get(
    "/v1/jobs/{job_id:str}/events",
    opt={TICKETS_ACCEPTED: True, LOCATED_BY: BY_JOB},
    responses=errors(),
    media_type=SSE_MEDIA_TYPE,
    response_description="the job's events as server-sent events, until its final job_update",
)
async def job_events(
    job_id: JobId,
    runtime: RuntimeDep,
    last_event_id: Annotated[str | None, HeaderParameter(name="Last-Event-ID")] = None,
) -> ServerSentEvent:
    after = stream.parse_last_event_id(last_event_id)
    job = runtime.jobs.get(job_id)
    frames = stream.frames(job, after, runtime.settings.sse_ping_ms / 1000)
    return sse.response(frames, runtime.metrics.sse_subscribers.labels(stream="jobs"))


ROUTES = [submit_job, list_jobs, get_job, cancel_job, job_events]
