"""The ``docker-runner-client`` command line, on the typed client (package-private).

One module per group of commands, each adding its parsers with ``register(commands)``:
:mod:`.containers` (health, ps, start, stop, rm), :mod:`.execs` (exec, run, test), :mod:`.copy`
(cp), :mod:`.shell` (shell), :mod:`.streams` (logs, events), :mod:`.jobs` (jobs, job, pools),
:mod:`.terminal` (terminal). The pure pieces: :mod:`.args` (option values), :mod:`.output`
(tables, JSON), :mod:`.exits` (exit codes, the one table of exceptions to codes). :mod:`.app`
builds the parser and runs a command.
"""

from .app import build_parser, main

__all__ = ["build_parser", "main"]
