"""The Docker engine as the runner uses it: the only importer of docker-py.

Owns the connected client and its one error boundary (``engine_errors``), the two thread budgets
and the one offload to threads (``threads.in_thread``), the engine's availability after an outage,
the removal queue of the runner's own containers, streamed engine responses, raw tar archives in
and out, the hijacked sockets, and THE socket pump that every exec run, one-shot run and job uses.

May import: ``errors``, ``settings``, ``protocol``; nothing of the capabilities above it.
"""
