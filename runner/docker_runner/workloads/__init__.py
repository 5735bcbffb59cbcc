"""Work the runner does in containers it makes for it: the bootstrap container
(a script written to an attached stdin), pools of pre-warmed ones, and the one-shot and test runs
that use them, orchestrated here rather than in the route handlers.

May import: ``engine``, ``containers``, ``policy``, ``exec``, ``protocol``, ``errors``, ``settings``,
``units``, ``metrics``.
"""
