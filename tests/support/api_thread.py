"""Serve an API app with uvicorn on a thread of the test process (a real HTTP server, so
streamed responses stream: httpx's ASGI transport reads a whole body before returning)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from fastapi import FastAPI

from queueworker.api.app import create_app

from support.api_client import settings_for
from support.redis_server import free_port


def web_app(redis_url: str) -> FastAPI:
    """The API app (with its web view, api/web/) on the test settings."""
    return create_app(settings_for(redis_url))


@contextmanager
def serving(app: FastAPI) -> Iterator[str]:
    """The base URL of ``app`` served on 127.0.0.1 until the block ends."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           timeout_graceful_shutdown=2))
    thread = threading.Thread(target=server.run, name="api-thread", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise AssertionError("uvicorn did not start on its thread")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)
