"""Pure protocol pieces: bytes in, bytes or values out, no I/O.

Owns the NDJSON line splitter (engine events, job output), the demultiplexer of the engine's
8-byte stream frames, the bounded output buffers, the checks and rewrite of patch archives, the
SSE frame as data, and the exact-resume cursor of the events stream.

May import: the standard library only; nothing of docker_runner.
"""
