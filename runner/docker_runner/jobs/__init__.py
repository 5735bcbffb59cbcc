"""Jobs: a container fed one JSON line on stdin, whose output lines come back as events;
the manager, the request and its create body, the attach, the event buffer and the SSE frames.

May import: ``engine``, ``containers``, ``policy``, ``exec``, ``protocol``, ``errors``, ``settings``,
``units``, ``metrics``.
"""
