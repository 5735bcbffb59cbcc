"""Many engines behind one API (``DOCKER_RUNNER_CLUSTER=swarm``): one runner per Swarm node, each on
its own node's engine, and any runner answers for any container.

Swarm does the scheduling: a container is a one-replica service (``spec``: the final create body as
a service; ``placement``: create it, wait for its task, remove it). What the runner adds is what
Swarm lacks: exec, logs, archives and terminals reach a container only through its own node's
engine, so a request for a container elsewhere is forwarded to that node's runner (``forward``),
found through Swarm's tasks (``cluster``) and the peers' own answers (``peers``).

May import: ``engine``, ``containers``, ``policy``, ``auth``, ``protocol``, ``errors``, ``settings``,
``units``, ``metrics``; never ``http``.
"""
