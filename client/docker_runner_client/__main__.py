"""``docker-runner-client`` / ``python -m docker_runner_client``: the client from a shell.

The commands are in :mod:`docker_runner_client._cli`; ``docker-runner-client --help`` lists them,
with the exit codes.
"""

from __future__ import annotations

import sys

from ._cli import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
