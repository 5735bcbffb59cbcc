"""Cluster fixtures: a real Swarm of three engines (scripts/swarm-bed.sh), a real redis-server, lost hosts.

Without root, dockerd or network namespaces the tests that need the bed skip with the reason; with
RUNNER_REQUIRE_CLUSTER=1 (what CI sets) they fail instead. The same holds for redis-server.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import NoReturn

import pytest

from tests.support.swarm_bed import (
    NODE_COUNT,
    OVERLAY_NETWORK,
    BedError,
    BedLease,
    NodeOutage,
    SwarmBed,
    Teardown,
    bed_problem,
    parse_up_output,
    run_bed,
)

# how long a session waits for another one (or a hand-made bed) to let go of the bed
BED_LOCK_WAIT_SECONDS = 180


def _unavailable(reason: str) -> NoReturn:
    if os.environ.get("RUNNER_REQUIRE_CLUSTER") == "1":
        pytest.fail(f"RUNNER_REQUIRE_CLUSTER=1 but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="package")
def swarm_bed() -> Iterator[SwarmBed]:
    """Three engines in one Swarm (node 1 manager, an attachable overlay), made once and always removed.

    Package scope: made on first use, removed once the last test of tests/cluster has run, so the
    rest of a session neither waits for it nor keeps it (and its lock) up.
    """
    problem = bed_problem()
    if problem is not None:
        _unavailable(problem)
    try:
        lease = BedLease(wait_seconds=BED_LOCK_WAIT_SECONDS)
    except TimeoutError as exc:
        _unavailable(str(exc))
    teardown = Teardown()  # from here on `down` runs, whatever happens
    try:
        try:
            run_bed("down")  # a bed left by a killed session, or made by hand: this session owns the bed
            output = run_bed("up", str(NODE_COUNT), "--overlay", OVERLAY_NETWORK)
        except BedError as exc:
            _unavailable(f"the swarm bed cannot be made: {exc}")
        yield parse_up_output(output)
    finally:
        try:
            teardown.run()
        finally:
            lease.close()


@pytest.fixture
def node_outage(swarm_bed: SwarmBed) -> Iterator[NodeOutage]:
    """kill(N) / revive(N) within a test; every node is back and Ready before the next test."""
    outage = NodeOutage()
    try:
        yield outage
    finally:
        outage.restore()
