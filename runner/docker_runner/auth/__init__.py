"""Who may call: the HMAC request checks in their order, the nonce cache that refuses
replays, and the single-use browser tickets.

The HTTP middleware that applies them lives in ``http/``; the signing payload is the client's own
(``docker_runner_client._signing``), so signing and verifying can never disagree.

May import: ``errors``, ``protocol``, the client's ``_signing``; never the engine.
"""
