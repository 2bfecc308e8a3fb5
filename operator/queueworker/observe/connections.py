"""Build Redis clients from `spec.redis`, and keep the password out of sight.

A spec names its Redis by URL or by Secret, or as a master behind Redis
Sentinel (``spec.redis.sentinel``: the Sentinels' addresses, with their own
user, password Secret and TLS), with an optional ACL user, a password Secret,
a database index and TLS (with a CA from a Secret). Clients come from the one
factory, ``queueworker.worker.connection``, which the worker, the producer and
the CLI use too (Sentinel: a ``redis+sentinel://`` URL there). Secrets
are looked up through a resolver the caller passes in (the operator reads
them from the API; local mode and tests pass a dict), so this module does no
Kubernetes I/O. `queueworker.common.redact` is the one way a URL is ever shown to a person.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

import redis
import redis.asyncio

from queueworker.common.errors import QueueworkerError
from queueworker.common.redact import redact
from queueworker.operator import api
from queueworker.worker import connection

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
    sentinel: connection.SentinelSettings | None = None  # url is then redis+sentinel://

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
            # redis-py's Sentinel pool and RedisCluster pick SSL by this flag
            if self.sentinel is not None or connection.is_cluster_url(self.url):
                out["ssl"] = True
            out["ssl_cert_reqs"] = "required" if self.ssl_verify else "none"
            if self.ssl_ca_data:
                out["ssl_ca_data"] = self.ssl_ca_data
        return out

    def _master_kwargs(self, extra: dict[str, Any]) -> dict[str, Any]:
        _, master = connection.parse_sentinel_url(self.url)  # db, ssl, the URL's options
        return {**master, **self.kwargs(), **extra}

    def sync_client(self, **extra: Any) -> redis.Redis:
        if self.sentinel is not None:
            return connection.sentinel_sync(self.sentinel, **self._master_kwargs(extra))
        return connection.sync_client(self.url, **{**self.kwargs(), **extra})

    def async_client(self, **extra: Any) -> redis.asyncio.Redis:
        if self.sentinel is not None:
            return connection.sentinel_async(self.sentinel, **self._master_kwargs(extra))
        return connection.async_client(self.url, **{**self.kwargs(), **extra})


def _lookup(resolver: SecretResolver | None, ref: api.SecretKeyRef, what: str) -> str:
    if resolver is None:
        raise RedisConfigError(f"spec.redis.{what}: Secret {ref.name!r} cannot be read here")
    try:
        return resolver(ref.name, ref.key)
    except KeyError:
        raise RedisConfigError(
            f"spec.redis.{what}: Secret {ref.name!r} has no key {ref.key!r} (or does not exist)"
        ) from None


def secret_refs(spec: api.RedisSpec) -> list[api.SecretKeyRef]:
    """Every Secret key `spec.redis` names (the operator checks each one's opt-in)."""
    refs = [spec.url_secret_ref, spec.password_secret_ref, spec.tls.ca_secret_ref]
    if spec.sentinel is not None:
        refs += [spec.sentinel.password_secret_ref, spec.sentinel.tls.ca_secret_ref]
    return [ref for ref in refs if ref is not None]


def _sentinel_settings(s: api.RedisSentinel, resolver: SecretResolver | None
                       ) -> connection.SentinelSettings:
    try:
        addresses = tuple(connection.parse_address(a) for a in s.addresses)
    except connection.RedisURLError as exc:
        raise RedisConfigError(f"spec.redis.sentinel.addresses: {exc}") from None
    password = ca = None
    if s.password_secret_ref is not None:
        password = _lookup(resolver, s.password_secret_ref, "sentinel.passwordSecretRef")
    if s.tls.ca_secret_ref is not None:
        ca = _lookup(resolver, s.tls.ca_secret_ref, "sentinel.tls.caSecretRef")
    return connection.SentinelSettings(
        master=s.master_name, addresses=addresses, username=s.username, password=password,
        ssl=s.tls.enabled, ssl_ca_data=ca, ssl_verify=not s.tls.insecure_skip_verify)


def _url(spec: api.RedisSpec, resolver: SecretResolver | None
         ) -> tuple[str, connection.SentinelSettings | None]:
    """The spec's URL (a redis+sentinel:// one, without credentials, for `sentinel`)."""
    if spec.sentinel is not None:
        sentinels = _sentinel_settings(spec.sentinel, resolver)
        bare = connection.SentinelSettings(sentinels.master, sentinels.addresses)
        return connection.sentinel_url(bare), sentinels
    if spec.url is not None:
        url, what = spec.url, "url"
    elif spec.url_secret_ref is not None:
        url, what = _lookup(resolver, spec.url_secret_ref, "urlSecretRef").strip(), "urlSecretRef"
    else:  # the model's CEL rule makes this unreachable for validated specs
        raise RedisConfigError("spec.redis: set url, urlSecretRef or sentinel")
    scheme = urlsplit(url).scheme
    if scheme not in ("redis", "rediss", "unix", *connection.SENTINEL_SCHEMES,
                      *connection.CLUSTER_SCHEMES):
        raise RedisConfigError(f"spec.redis.{what}: scheme must be redis, rediss, unix, "
                               f"redis+sentinel, rediss+sentinel, redis+cluster or "
                               f"rediss+cluster, got {scheme!r}")
    if scheme in connection.CLUSTER_SCHEMES:
        try:
            connection.parse_cluster_url(url)
        except connection.RedisURLError as exc:
            raise RedisConfigError(f"spec.redis.{what}: {exc}") from None
    if scheme not in connection.SENTINEL_SCHEMES:
        return url, None
    try:
        return url, connection.parse_sentinel_url(url)[0]
    except connection.RedisURLError as exc:
        raise RedisConfigError(f"spec.redis.{what}: {exc}") from None


def target_from_spec(spec: api.RedisSpec, resolver: SecretResolver | None = None) -> RedisTarget:
    """Resolve `spec.redis` into a RedisTarget; RedisConfigError names the bad field."""
    url, sentinels = _url(spec, resolver)
    parts = urlsplit(url)
    secrets: list[str] = []
    if sentinels is not None and sentinels.password:
        secrets.append(sentinels.password)
    username = spec.username or (unquote(parts.username) if parts.username else None)
    password = unquote(parts.password) if parts.password else None
    if password:
        secrets.append(password)
    if spec.password_secret_ref is not None:
        password = _lookup(resolver, spec.password_secret_ref, "passwordSecretRef")
        secrets.append(password)
    # Credentials travel as connection kwargs, never inside the URL we keep.
    path = parts.path
    query = parts.query
    if connection.is_cluster_url(url):  # host:port,host:port...; a cluster has only db 0
        netloc = parts.netloc.rpartition("@")[2]
        if spec.db:
            raise RedisConfigError("spec.redis.db: a Redis Cluster has only db 0")
    elif sentinels is None:
        host = parts.hostname or ""
        netloc = f"[{host}]" if ":" in host else host
        if parts.port:
            netloc += f":{parts.port}"
        if spec.db is not None:
            path = f"/{spec.db}"
    else:
        netloc = parts.netloc.rpartition("@")[2]
        if spec.db is not None:
            path = f"/{quote(sentinels.master, safe='')}/{spec.db}"
        query = urlencode([(k, v) for k, v in parse_qsl(query) if k != "sentinel_password"])
    use_tls = spec.tls.enabled or parts.scheme.startswith("rediss")
    scheme = parts.scheme
    if use_tls and scheme in ("redis", "redis+sentinel", "redis+cluster"):
        scheme = scheme.replace("redis", "rediss", 1)
    clean = urlunsplit((scheme, netloc, path, query, ""))
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
        sentinel=sentinels,
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
    query = parts.query
    if target.sentinel is not None:  # the Sentinels' own settings ride in the query
        query = urlsplit(connection.sentinel_url(target.sentinel, query=dict(
            parse_qsl(query)))).query
    return urlunsplit((parts.scheme, userinfo + parts.netloc, parts.path, query, ""))
