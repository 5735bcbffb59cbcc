"""The engine's availability: away after a lost call, 503 at once, one bounded probe at a time."""

from __future__ import annotations

import threading

import pytest

from docker_runner.engine.availability import Availability
from docker_runner.errors import ApiError, docker_unavailable


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Probe:
    def __init__(self) -> None:
        self.calls = 0
        self.failing = True

    def __call__(self) -> None:
        self.calls += 1
        if self.failing:
            raise docker_unavailable("ConnectTimeout")


def test_an_engine_never_lost_is_never_probed() -> None:
    """Before any failure, calls go straight on: no probe, no wait."""
    probe = Probe()
    availability = Availability(probe, probe_interval_seconds=0.2, clock=Clock())
    availability.check()
    assert (probe.calls, availability.away) == (0, False)


def test_while_away_calls_fail_at_once_and_a_probe_runs_at_most_once_per_interval() -> None:
    """After a lost call: 503 docker_unavailable at once; one probe per interval; back when a probe passes."""
    probe, clock = Probe(), Clock()
    availability = Availability(probe, probe_interval_seconds=0.2, clock=clock)
    availability.lost(docker_unavailable("ConnectionError"))
    with pytest.raises(ApiError) as first:
        availability.check()
    assert (first.value.status, first.value.code, first.value.retryable) == (503, "docker_unavailable", True)
    assert "the engine is away" in first.value.message and probe.calls == 1
    with pytest.raises(ApiError):
        availability.check()  # within the interval: refused without a probe
    assert probe.calls == 1
    clock.now += 0.25
    probe.failing = False
    availability.check()
    assert (probe.calls, availability.away) == (2, False)
    availability.check()
    assert probe.calls == 2


def test_a_probe_in_flight_makes_the_others_fail_at_once() -> None:
    """While one probe waits on a hung engine, other calls do not queue behind it."""
    release = threading.Event()
    entered = threading.Event()

    def hung_probe() -> None:
        entered.set()
        release.wait(10)

    clock = Clock()
    availability = Availability(hung_probe, probe_interval_seconds=0.0, clock=clock)
    availability.lost(docker_unavailable("ConnectionError"))
    prober = threading.Thread(target=availability.check)
    prober.start()
    assert entered.wait(10)
    with pytest.raises(ApiError):
        availability.check()
    release.set()
    prober.join(10)
    assert not availability.away


def test_messages_do_not_nest() -> None:
    """However often the engine is found away, the message names the first reason once."""
    probe, clock = Probe(), Clock()
    availability = Availability(probe, probe_interval_seconds=0.0, clock=clock)
    availability.lost(docker_unavailable("ConnectionError"))
    for _ in range(3):
        with pytest.raises(ApiError) as caught:
            availability.check()
    assert caught.value.message.count("Docker engine unavailable") == 1
