"""DOCKER_RUNNER_POOLS: JSON, a JSON or YAML file, and errors that name the problem."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from docker_runner.runtime import Runtime
from docker_runner.workloads.pool_config import PoolError, load_pools
from tests.support.server import make_settings


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ('[{"image": "a", "min": 3, "max": 2}]', "min (3) is above max (2)"),
        ('[{"image": "a"}, {"image": "a"}]', "one pool per image"),
        ('[{"image": "a", "size": 2}]', "size"),
        ('[{"image": "a", "containerOpts": {"memory": "lots"}}]', "containerOpts"),
        ("/nonexistent/pools.json", "cannot read"),
        ("[{", "DOCKER_RUNNER_POOLS"),
        ('{"pool": [{"image": "a"}]}', "exactly one key, pools (got pool)"),
        ('{"pools": [], "extra": 1}', "(got extra, pools)"),
        ("{}", "(got none)"),
    ],
)
def test_bad_pool_configuration_names_the_problem(raw: str, message: str) -> None:
    """Each mistake stops the start with the variable's name and what is wrong, never "no pools"."""
    with pytest.raises(PoolError, match=r"^DOCKER_RUNNER_POOLS: ") as caught:
        load_pools(raw)
    assert message in str(caught.value) and str(caught.value).count("DOCKER_RUNNER_POOLS") == 1


def test_a_typo_in_a_pools_file_is_an_error_too(tmp_path: Path) -> None:
    """A YAML file whose top key is misspelt does not silently mean no pools."""
    path = tmp_path / "pools.yaml"
    path.write_text("pool:\n  - image: busybox\n")
    with pytest.raises(PoolError, match="got pool"):
        load_pools(str(path))


def test_pools_from_a_yaml_file(tmp_path: Path) -> None:
    """An object with a ``pools`` list, in YAML, is the documented file form."""
    path = tmp_path / "pools.yaml"
    path.write_text("pools:\n  - image: busybox\n    min: 0\n    max: 2\n    healthCmd: ['true']\n")
    (pool,) = load_pools(str(path))
    assert (pool.image, pool.min, pool.max) == ("busybox", 0, 2)


def test_a_pool_the_policy_denies_stops_the_start() -> None:
    """The policy is known at start: a pool it denies is refused then, naming the pool and the field,
    instead of every run of that image failing later."""
    pools = json.dumps([{"image": "busybox", "containerOpts": {"privileged": True}}])
    with pytest.raises(PoolError) as caught:
        Runtime.create(make_settings(pools=pools))
    assert str(caught.value).startswith("DOCKER_RUNNER_POOLS: pool busybox: HostConfig.Privileged")
