"""The web framework's side (Litestar): the authentication middleware, error handlers,
SSE responses, the request observer (log lines and metrics), the OpenAPI document, the runtime's
dependency injection, and ``routes/``: one module per resource, each handler parsing its request
and answering, the work itself done by the packages below.

May import: everything of the runner but the composition (``app``, ``server``, ``__main__``).
"""
