"""A small synchronous client of the test API server, as its admin (client cert).

Enough for the harness's own kubelet and fake Nodes: JSON requests, strategic
merge patches, and a watch stream. The operator under test uses its own client.
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from http.client import HTTPResponse
from typing import Any

from cluster.pki import PKI

JSON = "application/json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"


class ApiError(RuntimeError):
    """A request answered with an HTTP error status (or not at all: status 0)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status


class KubeApi:
    def __init__(self, server: str, pki: PKI) -> None:
        self.server = server
        self.context = ssl.create_default_context(cafile=str(pki.ca_crt))
        self.context.load_cert_chain(str(pki.admin_crt), str(pki.admin_key))

    def _open(self, method: str, path: str, body: Any = None, content_type: str = JSON,
              timeout: float = 15) -> HTTPResponse:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(f"{self.server}{path}", data=data, method=method,
                                     headers={"Content-Type": content_type, "Accept": JSON})
        try:
            resp: HTTPResponse = urllib.request.urlopen(req, timeout=timeout,
                                                        context=self.context)
        except urllib.error.HTTPError as err:
            detail = err.read().decode(errors="replace")
            try:
                detail = json.loads(detail).get("message", detail)
            except ValueError:
                pass
            raise ApiError(err.code, f"{method} {path}: {detail}") from err
        except (urllib.error.URLError, OSError) as err:
            raise ApiError(0, f"{method} {path}: {err}") from err
        return resp

    def request(self, method: str, path: str, body: Any = None,
                content_type: str = JSON) -> dict[str, Any]:
        with self._open(method, path, body, content_type) as resp:
            raw = resp.read()
        out: dict[str, Any] = json.loads(raw) if raw else {}
        return out

    def get(self, path: str) -> dict[str, Any]:
        return self.request("GET", path)

    def patch_status(self, path: str, status: dict[str, Any]) -> dict[str, Any]:
        """Strategic merge patch of `path`/status: lists such as `conditions`
        merge by their key (type), as the kubelet's own status updates do."""
        return self.request("PATCH", f"{path}/status", {"status": status}, STRATEGIC_PATCH)

    def watch(self, path: str, resource_version: str, timeout_seconds: int = 60,
              **params: str) -> Iterator[dict[str, Any]]:
        """Watch events of a collection from `resource_version` (ends after
        `timeout_seconds`; the caller lists and watches again)."""
        query = urllib.parse.urlencode({
            "watch": "1", "resourceVersion": resource_version, "allowWatchBookmarks": "true",
            "timeoutSeconds": str(timeout_seconds), **params})
        with self._open("GET", f"{path}?{query}", timeout=timeout_seconds + 30) as resp:
            for line in resp:
                if line.strip():
                    event: dict[str, Any] = json.loads(line)
                    yield event


def quote(value: str) -> str:
    return urllib.parse.quote(value, safe="")
