"""DOCKER_RUNNER_POOLS: JSON, a JSON or YAML file, and errors that name the problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from docker_runner.pool import PoolError, load_pools


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ('[{"image": "a", "min": 3, "max": 2}]', "min (3) is above max (2)"),
        ('[{"image": "a"}, {"image": "a"}]', "one pool per image"),
        ('[{"image": "a", "size": 2}]', "size"),
        ('[{"image": "a", "containerOpts": {"memory": "lots"}}]', "containerOpts"),
        ("/nonexistent/pools.json", "cannot read"),
        ("[{", "DOCKER_RUNNER_POOLS"),
    ],
)
def test_bad_pool_configuration_names_the_problem(raw: str, message: str) -> None:
    with pytest.raises(PoolError, match="DOCKER_RUNNER_POOLS") as caught:
        load_pools(raw)
    assert message in str(caught.value)


def test_pools_from_a_yaml_file(tmp_path: Path) -> None:
    path = tmp_path / "pools.yaml"
    path.write_text("pools:\n  - image: busybox\n    min: 0\n    max: 2\n    healthCmd: ['true']\n")
    (pool,) = load_pools(str(path))
    assert (pool.image, pool.min, pool.max) == ("busybox", 0, 2)
