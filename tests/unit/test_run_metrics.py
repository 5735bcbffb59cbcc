"""The metrics of one-shot and test runs and of jobs, the pure parts: how a run's result is named,
and which series exist before anything ran."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from docker_runner.jobs.manager import ENDED
from docker_runner.metrics import JOB_STATUSES, RUN_KINDS, RUN_OUTCOMES, Metrics
from docker_runner.workloads.bootstrap import RunResult
from docker_runner.workloads.runs import run_outcome


def _result(exit_code: int | None, *, timed_out: bool = False, cancelled: bool = False) -> RunResult:
    return RunResult(exit_code, "", "", truncated=False, timed_out=timed_out, cancelled=cancelled, elapsed_ms=1)


@pytest.mark.parametrize(
    ("result", "outcome"),
    [
        (_result(0), "exited"),
        (_result(1), "failed"),
        (_result(137), "failed"),
        (_result(None), "failed"),  # the container died under the script: no exit marker
        (_result(None, timed_out=True), "timeout"),
        (_result(None, cancelled=True), "cancelled"),
        (_result(None, timed_out=True, cancelled=True), "cancelled"),
    ],
)
def test_a_run_result_names_its_outcome(result: RunResult, outcome: str) -> None:
    """Cancelled beats timeout; a script's own code 0 is exited, anything else it ended with is failed."""
    assert run_outcome(result) == outcome


def test_run_and_job_series_exist_at_zero_from_the_start() -> None:
    """Every (kind, outcome, pooled) and every job status is a series at 0 before any run or job,
    so rates show 0 instead of nothing; the label values are exactly the fixed sets."""
    families = {family.name: family for family in text_string_to_metric_families(Metrics().render().decode())}
    runs = [sample for sample in families["docker_runner_runs"].samples if sample.name.endswith("_total")]
    assert {(s.labels["kind"], s.labels["outcome"], s.labels["pooled"]) for s in runs} == {
        (kind, outcome, pooled) for kind in RUN_KINDS for outcome in RUN_OUTCOMES for pooled in ("true", "false")
    }
    assert all(sample.value == 0 for sample in runs)
    run_counts = [s for s in families["docker_runner_run_duration_seconds"].samples if s.name.endswith("_count")]
    assert {(s.labels["kind"], s.labels["pooled"]) for s in run_counts} == {
        (kind, pooled) for kind in RUN_KINDS for pooled in ("true", "false")
    }
    job_counts = [s for s in families["docker_runner_job_duration_seconds"].samples if s.name.endswith("_count")]
    assert {s.labels["status"] for s in job_counts} == set(JOB_STATUSES) == set(ENDED)
