"""``queueworker api``: the HTTP API over the native worker's queues (docs/api.md).

``app.create_app(settings)`` builds the ASGI app; ``cli.main`` serves it with uvicorn.
Needs the ``api`` extra (``pip install 'queueworker[api]'``).
"""
