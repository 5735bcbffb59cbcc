"""Commands in running containers: exec runs (to their end, a timeout, or a cancel), in a docker
exec of their own or through a resident command channel, the kill of everything a run started,
interactive sessions, and what cancels a long run (the client gone, the shutdown cut).

May import: ``engine``, ``containers``, ``protocol``, ``errors``, ``settings``, ``units``, ``metrics``.
"""
