"""The cluster test bed, scripts/swarm-bed.sh: its node lines as objects, its lock, and a teardown that always runs.

One bed per machine: the script's paths (/run/drbed, the bridge drbed0, ...) are fixed, so a test session
holds the script's lock (LOCK_PATH) for as long as it uses the bed, and another session waits for it.
"""

from __future__ import annotations

import atexit
import fcntl
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Literal

import docker

from tests.support.docker_env import engine_problem

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "scripts" / "swarm-bed.sh"
LOCK_PATH = "/run/lock/drbed.lock"  # the script's own lock
OVERLAY_NETWORK = "drbed-overlay"
NODE_COUNT = 3
# the tools the script needs that it cannot install itself (it installs iproute2)
REQUIRED_TOOLS = ("bash", "docker", "dockerd", "iptables", "nsenter", "unshare", "setsid", "flock")

Role = Literal["manager", "worker"]
_NODE_KEYS = ("node", "socket", "addr", "swarm_node_id", "role")
_NETWORK_KEYS = ("network", "id", "driver", "attachable")


class BedError(RuntimeError):
    """swarm-bed.sh failed: the command, its exit status and the end of its stderr."""

    def __init__(self, args: tuple[str, ...], returncode: int, stderr: str) -> None:
        tail = "\n".join(stderr.strip().splitlines()[-10:])
        super().__init__(f"swarm-bed.sh {' '.join(args)} exited {returncode}: {tail}")
        self.returncode = returncode
        self.stderr = stderr


@dataclass(frozen=True)
class BedNode:
    """One engine of the bed, as `swarm-bed.sh up` prints it."""

    number: int  # N of drbedN; the node label drbed.node=N
    socket: str  # unix:///run/drbed/N/docker.sock
    addr: str  # the node's address on the bed's bridge, reachable from the host
    swarm_node_id: str
    role: Role

    def api(self, timeout: int = 30) -> docker.APIClient:
        """A new client of this node's engine; close it (it is a context manager)."""
        return docker.APIClient(base_url=self.socket, version="auto", timeout=timeout)


@dataclass(frozen=True)
class SwarmBed:
    nodes: tuple[BedNode, ...]
    overlay_network: str | None  # an attachable overlay network (services on it need endpoint_mode dnsrr)

    @property
    def manager(self) -> BedNode:
        """The first manager (node 1): only a manager's engine answers swarm calls."""
        return next(node for node in self.nodes if node.role == "manager")

    def node(self, number: int) -> BedNode:
        return next(node for node in self.nodes if node.number == number)

    def by_swarm_id(self, swarm_node_id: str) -> BedNode:
        return next(node for node in self.nodes if node.swarm_node_id == swarm_node_id)


def _fields(line: str, keys: tuple[str, ...]) -> dict[str, str]:
    pairs = [item.partition("=") for item in line.split()]
    fields = {key: value for key, sep, value in pairs if sep and value}
    if tuple(fields) != keys or len(pairs) != len(keys):
        raise ValueError(f"not a swarm-bed line with {', '.join(keys)}: {line!r}")
    return fields


def parse_node_line(line: str) -> BedNode:
    """`node=N socket=... addr=IP swarm_node_id=ID role=manager|worker` as a BedNode; ValueError otherwise."""
    fields = _fields(line, _NODE_KEYS)
    role = fields["role"]
    if not fields["node"].isdigit() or role not in ("manager", "worker"):
        raise ValueError(f"bad node number or role: {line!r}")
    return BedNode(
        number=int(fields["node"]),
        socket=fields["socket"],
        addr=fields["addr"],
        swarm_node_id=fields["swarm_node_id"],
        role="manager" if role == "manager" else "worker",
    )


def parse_up_output(text: str) -> SwarmBed:
    """The whole output of `up`: node lines, then at most one network line."""
    nodes: list[BedNode] = []
    network: str | None = None
    for line in text.splitlines():
        if line.startswith("node="):
            nodes.append(parse_node_line(line))
        elif line.startswith("network="):
            network = _fields(line, _NETWORK_KEYS)["network"]
        elif line.strip():
            raise ValueError(f"unexpected line from swarm-bed.sh up: {line!r}")
    if not nodes:
        raise ValueError("swarm-bed.sh up printed no node line")
    return SwarmBed(nodes=tuple(sorted(nodes, key=lambda node: node.number)), overlay_network=network)


def bed_problem() -> str | None:
    """Why the bed cannot be made here, or None."""
    if os.geteuid() != 0:
        return "the swarm bed needs root (network namespaces, a bridge, extra dockerd)"
    missing = [tool for tool in REQUIRED_TOOLS if shutil.which(tool) is None]
    if missing:
        return f"the swarm bed needs {', '.join(missing)} (Debian: docker.io, util-linux)"
    try:
        subprocess.run(["unshare", "--net", "true"], check=True, capture_output=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "no network namespaces here (unshare --net fails)"
    return engine_problem()  # the main engine gives the test image


def run_bed(*args: str, timeout: float = 120) -> str:
    """Run swarm-bed.sh under the lock this process holds (see BedLease); its stdout, or BedError."""
    env = {**os.environ, "DRBED_LOCKED": LOCK_PATH}
    try:
        result = subprocess.run(
            ["bash", str(SCRIPT), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            check=False,
            start_new_session=True,  # a Ctrl-C or SIGTERM to our process group does not cut it short
        )
    except subprocess.TimeoutExpired as exc:
        raise BedError(args, -1, f"timed out after {timeout} s") from exc
    if result.returncode != 0:
        raise BedError(args, result.returncode, result.stderr)
    return result.stdout


class BedLease:
    """The script's lock, held by this process while it uses the bed; released by close (or by dying)."""

    def __init__(self, wait_seconds: float) -> None:
        os.makedirs(os.path.dirname(LOCK_PATH), exist_ok=True)
        self._fd: int | None = os.open(LOCK_PATH, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
        deadline = time.monotonic() + wait_seconds
        while True:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() > deadline:
                    self.close()
                    raise TimeoutError(
                        f"the swarm bed is in use (another test session or swarm-bed.sh holds {LOCK_PATH} "
                        f"for more than {wait_seconds:.0f} s)"
                    ) from None
                time.sleep(0.2)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class Teardown:
    """`swarm-bed.sh down` exactly once: from the fixture's finally, or at exit, or on SIGTERM.

    pytest unwinds fixtures on Ctrl-C (KeyboardInterrupt) by itself; SIGTERM (a cancelled CI job) would
    kill the interpreter without running them, so it is turned into KeyboardInterrupt while the bed is up.
    atexit is the last resort for an exit that skipped the finally. Only SIGKILL leaves a bed behind: the
    next session's fixture (or `scripts/swarm-bed.sh down`) removes it.
    """

    def __init__(self) -> None:
        self._done = False
        atexit.register(self.run)
        # only over the default: a handler someone else installed stays theirs
        self._sigterm_installed = signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
        if self._sigterm_installed:
            signal.signal(signal.SIGTERM, self._on_sigterm)

    @staticmethod
    def _on_sigterm(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    def run(self) -> None:
        if self._done:
            return
        self._done = True
        atexit.unregister(self.run)
        held = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
        try:  # a second Ctrl-C must not cut the teardown itself short
            for number in held:
                signal.signal(number, signal.SIG_IGN)
            run_bed("down")
        finally:
            for number, handler in held.items():
                signal.signal(number, handler)
            if self._sigterm_installed:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)


class NodeOutage:
    """Lost hosts within one test: kill and revive nodes; restore() revives whatever is still down."""

    def __init__(self) -> None:
        self._down: set[int] = set()

    def kill(self, number: int, *, with_containers: bool = False) -> None:
        """SIGKILL node N's dockerd; its containers keep running unless with_containers."""
        run_bed("kill", str(number), *(("--with-containers",) if with_containers else ()))
        self._down.add(number)

    def revive(self, number: int) -> BedNode:
        """Start node N's engine again; returns once it has rejoined and a manager sees it Ready."""
        node = parse_node_line(run_bed("revive", str(number)).strip())
        self._down.discard(number)
        return node

    def restore(self) -> None:
        for number in sorted(self._down):  # node 1, the manager, first
            self.revive(number)
