"""A small async Kubernetes client for the operator's own writes and reads.

kopf keeps its API client private, so the operator talks to the API server
through this one: the same credentials as kopf (the login handler keeps the
``kopf.ConnectionInfo`` it hands to kopf in the operator's memo, and the client
is built from it: handlers.py), JSON merge patches (lists are
replaced whole, which both a real API server and the kmock emulator agree on),
server-side apply (``apply``: the Deployment the operator owns), retries
with backoff on connection errors, HTTP 429 and 5xx, and a counter of failed calls
per operation for ``queueworker_api_errors_total``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

import aiohttp
import kopf

from queueworker.common.errors import QueueworkerError
from queueworker.common.log import log_event
from queueworker.operator import api

logger = logging.getLogger(__name__)

MERGE_PATCH = "application/merge-patch+json"
# JSON is YAML, so an apply body is sent as JSON under the apply content type.
APPLY_PATCH = "application/apply-patch+yaml"
# Delays between attempts; the last attempt's failure is raised.
DEFAULT_BACKOFFS: tuple[float, ...] = (0.2, 0.5, 1.0, 2.0)

class ApiError(QueueworkerError):
    def __init__(self, status: int, reason: str, message: str, operation: str) -> None:
        self.status = status
        self.reason = reason
        self.message = message
        self.operation = operation
        super().__init__(f"{operation}: HTTP {status} {reason}: {message}")


def _retryable(status: int) -> bool:
    return status == 429 or status >= 500


class KubeClient:
    """Created lazily inside the running loop; one per operator process."""

    def __init__(
        self,
        info: kopf.ConnectionInfo,
        *,
        backoffs: tuple[float, ...] = DEFAULT_BACKOFFS,
        on_error: Callable[[str], None] | None = None,
        on_request: Callable[[str], None] | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.info = info
        self.backoffs = backoffs
        self.on_error = on_error
        self.on_request = on_request
        self.timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            auth = None
            if self.info.username and self.info.password:
                auth = aiohttp.BasicAuth(self.info.username, self.info.password)
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=64, ssl=self.info.as_ssl_context()),
                headers={**self.info.as_http_headers(), "User-Agent": "queueworker-operator"},
                auth=auth,
                timeout=aiohttp.ClientTimeout(total=self.timeout),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def request(
        self,
        method: str,
        path: str,
        *,
        operation: str,
        body: Any = None,
        content_type: str = "application/json",
        params: dict[str, str] | None = None,
        not_found_ok: bool = False,
    ) -> dict[str, Any] | None:
        url = self.info.server.rstrip("/") + path
        data = None if body is None else json.dumps(body)
        headers = {"Content-Type": content_type} if data is not None else {}
        attempt = 0
        while True:
            if self.on_request is not None:
                self.on_request(operation)
            try:
                session = self._get_session()
                async with session.request(
                    method, url, data=data, headers=headers, params=params
                ) as resp:
                    if resp.status == 404 and not_found_ok:
                        return None
                    if resp.status >= 400:
                        text = await resp.text()
                        reason, message = _status_of(text, resp.reason or "")
                        error = ApiError(resp.status, reason, message, operation)
                        if not _retryable(resp.status) or attempt >= len(self.backoffs):
                            self._count(operation)
                            raise error
                    else:
                        if resp.status == 204:
                            return {}
                        result: dict[str, Any] = await resp.json(content_type=None)
                        return result
            except (aiohttp.ClientError, TimeoutError) as exc:
                if attempt >= len(self.backoffs):
                    self._count(operation)
                    raise ApiError(0, type(exc).__name__, str(exc), operation) from None
            delay = self.backoffs[attempt]
            attempt += 1
            log_event(logger, "api.retry", logging.DEBUG, operation=operation,
                      delay_seconds=round(delay, 1))
            await asyncio.sleep(delay)

    def _count(self, operation: str) -> None:
        if self.on_error is not None:
            self.on_error(operation)

    async def get(self, path: str, *, operation: str) -> dict[str, Any] | None:
        return await self.request("GET", path, operation=operation, not_found_ok=True)

    async def create(self, path: str, body: dict[str, Any], *, operation: str) -> dict[str, Any]:
        result = await self.request("POST", path, operation=operation, body=body)
        return result or {}

    async def patch(
        self, path: str, body: dict[str, Any], *, operation: str
    ) -> dict[str, Any] | None:
        return await self.request(
            "PATCH", path, operation=operation, body=body, content_type=MERGE_PATCH,
            not_found_ok=True,
        )

    async def apply(
        self, path: str, body: dict[str, Any], *, operation: str, field_manager: str,
        force: bool,
    ) -> dict[str, Any]:
        """Server-side apply of ``body`` (the whole intent of ``field_manager``): fields it
        applied before and leaves out now are removed unless another manager owns them;
        creates the object when it is missing (the API server then also checks "create").
        ``force`` takes over fields another manager set (else HTTP 409 Conflict)."""
        result = await self.request(
            "PATCH", path, operation=operation, body=body, content_type=APPLY_PATCH,
            params={"fieldManager": field_manager, "force": "true" if force else "false"},
        )
        return result or {}

    async def delete(self, path: str, *, operation: str) -> dict[str, Any] | None:
        return await self.request("DELETE", path, operation=operation, not_found_ok=True)


def _status_of(text: str, default_reason: str) -> tuple[str, str]:
    """Reason and message of a Kubernetes Status body, without any traceback it carries."""
    try:
        doc = json.loads(text)
    except ValueError:
        return default_reason, text[:300]
    if not isinstance(doc, dict):
        return default_reason, text[:300]
    return str(doc.get("reason") or default_reason), str(doc.get("message") or "")[:300]


# ------------------------------------------------------------------------------ paths


def deployments_path(namespace: str, name: str | None = None) -> str:
    base = f"/apis/apps/v1/namespaces/{namespace}/deployments"
    return f"{base}/{name}" if name else base


def pod_path(namespace: str, name: str) -> str:
    return f"/api/v1/namespaces/{namespace}/pods/{name}"


def secret_path(namespace: str, name: str) -> str:
    return f"/api/v1/namespaces/{namespace}/secrets/{name}"


def queueworker_status_path(namespace: str, name: str) -> str:
    return f"/apis/{api.GROUP}/{api.VERSION}/namespaces/{namespace}/{api.PLURAL}/{name}/status"
