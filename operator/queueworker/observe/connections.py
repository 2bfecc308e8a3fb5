"""Build Redis clients from `spec.redis`, and keep the password out of sight.

A spec names its Redis by URL or by Secret, with an optional ACL user, a
password Secret, a database index and TLS (with a CA from a Secret). Secrets
are looked up through a resolver the caller passes in (the operator reads
them from the API; local mode and tests pass a dict), so this module does no
Kubernetes I/O. `queueworker.common.redact` is the one way a URL is ever shown to a person.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import redis
import redis.asyncio

from queueworker.common.errors import QueueworkerError
from queueworker.common.redact import redact
from queueworker.operator import api

SecretResolver = Callable[[str, str], str]  # (secret name, key) -> value


class RedisConfigError(QueueworkerError, ValueError):
    """The spec's Redis settings cannot be turned into a connection (names what)."""


@dataclass(frozen=True)
class RedisTarget:
    """Everything needed to connect; `secrets` lists values that must never be shown."""

    url: str
    username: str | None
    password: str | None
    ssl: bool
    ssl_ca_data: str | None
    ssl_verify: bool
    secrets: tuple[str, ...]

    @property
    def display(self) -> str:
        return redact(self.url)

    def kwargs(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "socket_timeout": 5.0,
            "socket_connect_timeout": 5.0,
            "health_check_interval": 30,
        }
        if self.username is not None:
            out["username"] = self.username
        if self.password is not None:
            out["password"] = self.password
        if self.ssl:
            out["ssl_cert_reqs"] = "required" if self.ssl_verify else "none"
            if self.ssl_ca_data:
                out["ssl_ca_data"] = self.ssl_ca_data
        return out

    def sync_client(self, **extra: Any) -> redis.Redis:
        client: redis.Redis = redis.Redis.from_url(self.url, **{**self.kwargs(), **extra})
        return client

    def async_client(self, **extra: Any) -> redis.asyncio.Redis:
        client: redis.asyncio.Redis = redis.asyncio.Redis.from_url(
            self.url, **{**self.kwargs(), **extra}
        )
        return client


def _lookup(resolver: SecretResolver | None, ref: api.SecretKeyRef, what: str) -> str:
    if resolver is None:
        raise RedisConfigError(f"spec.redis.{what}: Secret {ref.name!r} cannot be read here")
    try:
        return resolver(ref.name, ref.key)
    except KeyError:
        raise RedisConfigError(
            f"spec.redis.{what}: Secret {ref.name!r} has no key {ref.key!r} (or does not exist)"
        ) from None


def target_from_spec(spec: api.RedisSpec, resolver: SecretResolver | None = None) -> RedisTarget:
    """Resolve `spec.redis` into a RedisTarget; RedisConfigError names the bad field."""
    if spec.url is not None:
        url = spec.url
    elif spec.url_secret_ref is not None:
        url = _lookup(resolver, spec.url_secret_ref, "urlSecretRef").strip()
    else:  # the model's CEL rule makes this unreachable for validated specs
        raise RedisConfigError("spec.redis: set url or urlSecretRef")
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise RedisConfigError(
            f"spec.redis.url: scheme must be redis, rediss or unix, got {parts.scheme!r}"
        )
    secrets: list[str] = []
    username = spec.username or (unquote(parts.username) if parts.username else None)
    password = unquote(parts.password) if parts.password else None
    if password:
        secrets.append(password)
    if spec.password_secret_ref is not None:
        password = _lookup(resolver, spec.password_secret_ref, "passwordSecretRef")
        secrets.append(password)
    # Credentials travel as connection kwargs, never inside the URL we keep.
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port:
        netloc += f":{parts.port}"
    path = parts.path
    if spec.db is not None:
        path = f"/{spec.db}"
    use_tls = spec.tls.enabled or parts.scheme == "rediss"
    scheme = "rediss" if use_tls and parts.scheme == "redis" else parts.scheme
    clean = urlunsplit((scheme, netloc, path, parts.query, ""))
    ca = None
    if spec.tls.ca_secret_ref is not None:
        ca = _lookup(resolver, spec.tls.ca_secret_ref, "tls.caSecretRef")
    return RedisTarget(
        url=clean,
        username=username,
        password=password,
        ssl=use_tls,
        ssl_ca_data=ca,
        ssl_verify=not spec.tls.insecure_skip_verify,
        secrets=tuple(s for s in secrets if s),
    )


def url_with_credentials(target: RedisTarget) -> str:
    """A full URL for a worker process's environment (never logged or shown)."""
    parts = urlsplit(target.url)
    userinfo = ""
    if target.username or target.password:
        userinfo = quote(target.username or "", safe="")
        if target.password:
            userinfo += ":" + quote(target.password, safe="")
        userinfo += "@"
    return urlunsplit((parts.scheme, userinfo + parts.netloc, parts.path, parts.query, ""))
