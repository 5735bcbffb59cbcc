"""The lines of scripts/swarm-bed.sh as the fixtures read them (no bed needed)."""

from __future__ import annotations

import pytest

from tests.support.swarm_bed import BedNode, parse_node_line, parse_up_output

LINE = "node=2 socket=unix:///run/drbed/2/docker.sock addr=192.168.237.12 swarm_node_id=54zbsm2f role=worker"


def test_a_node_line_becomes_a_bed_node() -> None:
    """Every field of a node line lands in its typed attribute."""
    expected = BedNode(2, "unix:///run/drbed/2/docker.sock", "192.168.237.12", "54zbsm2f", "worker")
    assert parse_node_line(LINE) == expected


@pytest.mark.parametrize(
    "line",
    [
        LINE.replace("role=worker", "role=boss"),
        LINE.replace("node=2", "node=two"),
        LINE.replace(" addr=192.168.237.12", ""),
        LINE + " extra=1",
        LINE.replace("swarm_node_id=54zbsm2f", "swarm_node_id="),
        "node=2 killed",
    ],
    ids=["bad-role", "bad-number", "missing-field", "extra-field", "empty-value", "kill-line"],
)
def test_a_malformed_node_line_is_refused(line: str) -> None:
    """A missing, extra, empty or mistyped field is an error, not a half-filled node."""
    with pytest.raises(ValueError):
        parse_node_line(line)


def test_up_output_gives_sorted_nodes_and_the_overlay() -> None:
    """up's node lines and its network line make one SwarmBed; node 1, a manager, is its manager."""
    manager = LINE.replace("node=2", "node=1").replace("worker", "manager").replace("54zbsm2f", "aaa")
    output = f"{LINE}\n{manager}\nnetwork=drbed-overlay id=m2wd driver=overlay attachable=true\n"
    bed = parse_up_output(output)
    assert [node.number for node in bed.nodes] == [1, 2]
    assert bed.manager.swarm_node_id == "aaa"
    assert bed.by_swarm_id("54zbsm2f").number == 2
    assert bed.overlay_network == "drbed-overlay"


def test_up_output_with_a_stray_line_is_refused() -> None:
    """Anything up prints besides node and network lines means the script and the fixture disagree."""
    with pytest.raises(ValueError):
        parse_up_output(f"{LINE}\nwarning: something\n")
