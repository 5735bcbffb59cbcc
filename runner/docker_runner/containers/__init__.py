"""Containers as clients see them: ContainerOpts and the engine create body, the
lifecycle (start, stop, remove, inspect, lookups), images, the managed scope (which containers and
volumes the runner may touch), TTL reaping, and the logs and events streams.

May import: ``engine``, ``policy``, ``protocol``, ``errors``, ``settings``, ``units``, ``metrics``.
"""
