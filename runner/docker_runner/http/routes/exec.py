"""``POST /v1/exec/run`` and ``POST /v1/exec/resize`` (docs/protocol.md 3.2)."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any

import msgspec
from litestar import Request, post
from litestar.params import JSONBody

from ...containers.spec import NonEmptyStr
from ...engine.core import APIClient
from ...engine.pump import Ending
from ...engine.sockets import Canceller
from ...errors import ApiError, Kind, shutting_down, validation_error
from ...exec.cancel import run_cancellable, watch_disconnect
from ...exec.run import ExecOutcome, ExecPath, ExecSpec, run_exec, shell_command
from ...metrics import Metrics
from ..dependencies import RuntimeDep
from ..forwarding import LOCATED_BY
from ..observe import note
from ..openapi import errors

NonNegativeInt = Annotated[int, msgspec.Meta(ge=0)]
PositiveInt = Annotated[int, msgspec.Meta(ge=1)]


class ExecRunOptions(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    workdir: str | None = None
    env: dict[str, str] | list[str] | None = None  # {"K": "V"} or ["K=V"], as ContainerOpts takes it
    tty: bool = False
    timeout_ms: NonNegativeInt | None = None
    idle_timeout_ms: NonNegativeInt | None = None
    kill_on_timeout: bool = True
    user: str | None = None
    stdin: str | None = None
    max_output_bytes: PositiveInt | None = None
    log_to_pid1: bool = False
    # The TypeScript client serialises its AbortSignal into the body (it arrives as {}): accepted, ignored.
    signal: Any = None


class ExecRunBody(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    container_id: NonEmptyStr
    command: NonEmptyStr | Annotated[list[str], msgspec.Meta(min_length=1)]
    options: ExecRunOptions | None = None


class ExecSize(msgspec.Struct, forbid_unknown_fields=True):
    cols: PositiveInt
    rows: PositiveInt


class ExecResizeBody(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    exec_id: NonEmptyStr
    size: ExecSize


def _spec(body: ExecRunBody, max_output_ceiling: int) -> ExecSpec:
    options = body.options or ExecRunOptions()
    stdin = None
    if options.stdin is not None:
        try:
            stdin = base64.b64decode(options.stdin, validate=True)
        except (binascii.Error, ValueError):
            raise validation_error("options.stdin", "is not valid base64") from None
    _refuse_nul("command", *([body.command] if isinstance(body.command, str) else body.command))
    _refuse_nul("options.workdir", options.workdir or "")
    _refuse_nul("options.user", options.user or "")
    max_output = options.max_output_bytes or max_output_ceiling
    if max_output > max_output_ceiling:
        raise validation_error("options.maxOutputBytes", f"must be at most {max_output_ceiling}")
    return ExecSpec(
        container_id=body.container_id,
        cmd=shell_command(body.command),
        env=_env(options.env),
        workdir=options.workdir,
        tty=options.tty,
        user=options.user or "",
        stdin=stdin,
        timeout_ms=options.timeout_ms or 0,
        idle_timeout_ms=options.idle_timeout_ms or 0,
        kill_on_timeout=options.kill_on_timeout,
        max_output_bytes=max_output,
        log_to_pid1=options.log_to_pid1,
    )


def _env(env: dict[str, str] | list[str] | None) -> dict[str, str]:
    if not isinstance(env, list):
        variables = dict(env or {})
    else:
        for item in env:
            if "=" not in item or item.startswith("="):
                raise validation_error("options.env", f"an array item must be NAME=value, got {item!r}")
        variables = dict(item.split("=", 1) for item in env)
    _refuse_nul("options.env", *variables, *variables.values())
    return variables


def _refuse_nul(field: str, *texts: str) -> None:
    """A process's arguments and environment are C strings: a NUL would cut them short unseen."""
    if any("\x00" in text for text in texts):
        raise validation_error(field, "must not contain a NUL character")


class ExecRunAnswer(msgspec.Struct, rename="camel"):
    stdout: str
    stderr: str
    exit_code: int
    duration_ms: int
    truncated: bool
    exec_id: str
    path: ExecPath  # "channel": through a resident command channel; "exec": a docker exec of its own


def _answer(spec: ExecSpec, outcome: ExecOutcome) -> ExecRunAnswer:
    if outcome.ending in (Ending.TIMEOUT, Ending.IDLE_TIMEOUT):
        idle = outcome.ending is Ending.IDLE_TIMEOUT
        # the texts the TypeScript client matches on
        message = (
            f"Exec idle timed out after {spec.idle_timeout_ms}ms"
            if idle
            else f"Exec timed out after {spec.timeout_ms}ms"
        )
        raise ApiError(
            Kind.TIMEOUT,
            "exec_idle_timeout" if idle else "exec_timeout",
            message,
            details={"stdout": outcome.stdout, "stderr": outcome.stderr, "killed": outcome.killed},
        )
    return ExecRunAnswer(
        stdout=outcome.stdout,
        stderr=outcome.stderr,
        exit_code=-1 if outcome.exit_code is None else outcome.exit_code,
        duration_ms=outcome.duration_ms,
        truncated=outcome.truncated,
        exec_id=outcome.exec_id,
        path=outcome.path,
    )


@post("/v1/exec/run", status_code=200, responses=errors(504), opt={LOCATED_BY: ("body", "containerId")})
async def exec_run(data: JSONBody[ExecRunBody], request: Request[Any, Any, Any], runtime: RuntimeDep) -> ExecRunAnswer:
    spec = _spec(data, runtime.settings.max_output_bytes)
    note(request.scope, containerId=spec.container_id)
    container_id, fast_exec_label = await runtime.managed.exec_target(spec.container_id)
    channels = runtime.channels if _fast_exec(spec, fast_exec_label, runtime.settings.fast_exec) else None

    def work(api: APIClient, canceller: Canceller) -> ExecOutcome:
        outcome = None if channels is None else channels.run_fast(api, container_id, spec, canceller)
        return run_exec(api, spec, canceller, runtime.engine.lean) if outcome is None else outcome

    try:
        outcome = await run_cancellable(runtime.engine, work, watch_disconnect(request.receive), runtime.draining)
    except ApiError as error:
        if error.kind is Kind.NOT_FOUND:  # the exec's own create found it gone: its verdict is stale
            runtime.managed.forget(container_id)
            runtime.channels.forget(container_id)
        raise
    _count(runtime.metrics, outcome)
    if outcome.ending is Ending.CANCELLED and runtime.draining.cut_begun:
        raise shutting_down({"stdout": outcome.stdout, "stderr": outcome.stderr, "killed": outcome.killed})
    return _answer(spec, outcome)


def _fast_exec(spec: ExecSpec, label: str | None, default: bool) -> bool:
    """Through a channel: the container's fastExec, else the setting; never with a tty."""
    return not spec.tty and (label == "true" if label in ("true", "false") else default)


def _count(metrics: Metrics, outcome: ExecOutcome) -> None:
    metrics.exec_runs.labels(outcome=outcome.ending.value).inc()
    metrics.exec_seconds.observe(outcome.duration_ms / 1000)
    if outcome.ending in (Ending.TIMEOUT, Ending.IDLE_TIMEOUT):
        metrics.exec_timeouts.labels(kind="idle" if outcome.ending is Ending.IDLE_TIMEOUT else "total").inc()
    if outcome.killed:
        reason = "disconnect" if outcome.ending is Ending.CANCELLED else "timeout"
        metrics.exec_kills.labels(reason=reason).inc()


@post("/v1/exec/resize", status_code=204, responses=errors(), opt={LOCATED_BY: ("exec", "execId")})
async def exec_resize(data: JSONBody[ExecResizeBody], runtime: RuntimeDep) -> None:
    await runtime.managed.exec_instance(data.exec_id)
    await runtime.engine.run(lambda api: api.exec_resize(data.exec_id, height=data.size.rows, width=data.size.cols))


ROUTES = [exec_run, exec_resize]
