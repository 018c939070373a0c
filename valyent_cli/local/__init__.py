"""The local sandbox: a Valyent-compatible API server on loopback.

State lives in SQLite (the ``store`` package), machines run as local processes (``supervisor``), the HTTP surface
is a Starlette app (``server.create_app``, its handlers in ``routes/``), ``runner`` runs it under uvicorn and
``daemon`` starts, stops and finds a background server. Nothing here is imported by ``valyent --help``.
"""
