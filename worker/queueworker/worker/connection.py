"""The one way every part of queueworker opens a Redis client: from a URL.

Worker, producer (``sync_client`` / ``async_client`` for your own code), CLI,
local mode and the operator's readers (``queueworker.observe.connections``)
all call this module, so a Redis behind Sentinel works everywhere it is named
by URL.

URL forms:

- ``redis://``, ``rediss://``, ``unix://``: one server, exactly as redis-py's
  ``from_url`` reads them.
- ``redis+sentinel://[user:password@]host[:port][,host[:port]...]/master[/db][?query]``:
  the master that the Sentinels at the listed addresses (port 26379 unless
  given) know as ``master``. ``rediss+sentinel://`` speaks TLS to the master.
  The user and password are the master's. Query parameters starting with
  ``sentinel_`` are for the Sentinels: ``sentinel_username``,
  ``sentinel_password``, ``sentinel_tls=true``, ``sentinel_ca_file``,
  ``sentinel_tls_insecure=true``; every other parameter (``ssl_ca_certs``,
  ``ssl_cert_reqs``, ``socket_timeout``...) is the master's, as in redis-py.
  The client asks a Sentinel for the master on every new connection, so after
  a failover the next command reaches the new master (commands in flight at the
  moment of the failover fail once with a connection error).
- ``redis+cluster://[user:password@]host:port[,host:port...][?query]`` (``rediss+cluster``
  for TLS): a Redis Cluster, any of its nodes as a start. ``sync_client`` /
  ``async_client`` (``cluster_sync`` / ``cluster_async``) give a ``RedisCluster``
  client: the native layout keeps every key a script touches in one queue's hash
  slot (keys.py), and the worker makes one script call per slot
  (tests/redis_topologies/test_topology_cluster_slots.py). The operator reads its
  native, list and stream queues there, and BullMQ / Laravel ones whose keys carry a hash
  tag (other layouts are refused: api_queues.py ``CLUSTER_RULES``); chains and batches
  run when their queues share a slot (flows.py), schedules are refused (their keys are not
  per queue).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

import redis
import redis.asyncio as aioredis
import redis.asyncio.cluster as acluster
import redis.asyncio.sentinel as asentinel
import redis.cluster
import redis.sentinel
from redis.connection import parse_url

from queueworker.common.errors import QueueworkerError

SENTINEL_SCHEMES = ("redis+sentinel", "rediss+sentinel")
CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")
DEFAULT_SENTINEL_PORT = 26379
_TRUE = ("1", "true", "yes", "on")


class RedisURLError(QueueworkerError, ValueError):
    """A Redis URL that cannot be used (says which part is wrong)."""


@dataclass(frozen=True)
class SentinelSettings:
    """Where the Sentinels are and how to talk to them (not to the master)."""

    master: str
    addresses: tuple[tuple[str, int], ...]
    username: str | None = None
    password: str | None = None
    ssl: bool = False
    ssl_ca_certs: str | None = None  # a CA file
    ssl_ca_data: str | None = None  # a PEM bundle (the operator reads it from a Secret)
    ssl_verify: bool = True

    def kwargs(self, socket_timeout: float | None, connect_timeout: float | None
               ) -> dict[str, Any]:
        out: dict[str, Any] = {"socket_timeout": socket_timeout,
                               "socket_connect_timeout": connect_timeout}
        if self.username:
            out["username"] = self.username
        if self.password:
            out["password"] = self.password
        if self.ssl:
            out["ssl"] = True
            out["ssl_cert_reqs"] = "required" if self.ssl_verify else "none"
            if self.ssl_ca_certs:
                out["ssl_ca_certs"] = self.ssl_ca_certs
            if self.ssl_ca_data:
                out["ssl_ca_data"] = self.ssl_ca_data
        return out


def is_sentinel_url(url: str) -> bool:
    return urlsplit(url).scheme in SENTINEL_SCHEMES


def is_cluster_url(url: str) -> bool:
    return urlsplit(url).scheme in CLUSTER_SCHEMES


def is_cluster(client: object) -> bool:
    """Whether ``client`` (redis-py or redis.asyncio) talks to a Redis Cluster."""
    return isinstance(client, redis.cluster.RedisCluster | acluster.RedisCluster)


def parse_cluster_url(url: str) -> tuple[tuple[tuple[str, int], ...], dict[str, Any]]:
    """A ``redis+cluster://`` URL -> (start nodes, connection kwargs)."""
    parts = urlsplit(url)
    if parts.scheme not in CLUSTER_SCHEMES:
        raise RedisURLError(f"not a Redis Cluster URL (scheme {parts.scheme!r})")
    userinfo, _, hosts = parts.netloc.rpartition("@")
    nodes = tuple(parse_address(h, 6379) for h in hosts.split(",") if h.strip())
    if not nodes:
        raise RedisURLError("Redis Cluster URL names no node (host:port,...)")
    if parts.path.strip("/"):
        raise RedisURLError("Redis Cluster URL takes no path: a cluster has only db 0")
    scheme = "rediss" if parts.scheme == "rediss+cluster" else "redis"
    kwargs = parse_url(urlunsplit((scheme, (userinfo + "@" if userinfo else "") + "node", "",
                                   parts.query, "")))
    for k in ("host", "port", "connection_class", "db"):
        kwargs.pop(k, None)
    if scheme == "rediss":
        kwargs["ssl"] = True
    return nodes, kwargs


def cluster_sync(url: str, **kwargs: Any) -> redis.cluster.RedisCluster:
    """A redis-py RedisCluster on the nodes of a ``redis+cluster://`` URL."""
    nodes, base = parse_cluster_url(url)
    return redis.cluster.RedisCluster(
        startup_nodes=[redis.cluster.ClusterNode(h, p) for h, p in nodes], **{**base, **kwargs})


def cluster_async(url: str, **kwargs: Any) -> acluster.RedisCluster:
    """The same over redis.asyncio."""
    nodes, base = parse_cluster_url(url)
    return acluster.RedisCluster(
        startup_nodes=[acluster.ClusterNode(h, p) for h, p in nodes], **{**base, **kwargs})


def parse_address(text: str, default_port: int = DEFAULT_SENTINEL_PORT) -> tuple[str, int]:
    """``host``, ``host:port`` or ``[v6]:port`` -> (host, port); RedisURLError if bad."""
    text = text.strip()
    host, port = text, str(default_port)
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest:
            port = rest.removeprefix(":")
    elif text.count(":") == 1:
        host, port = text.split(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise RedisURLError(f"bad Sentinel address {text!r}: use host:port")
    return host, int(port)


def parse_sentinel_url(url: str) -> tuple[SentinelSettings, dict[str, Any]]:
    """A ``redis+sentinel://`` URL -> (the Sentinels, the master's connection kwargs)."""
    parts = urlsplit(url)
    if parts.scheme not in SENTINEL_SCHEMES:
        raise RedisURLError(f"not a Sentinel URL (scheme {parts.scheme!r})")
    userinfo, _, hosts = parts.netloc.rpartition("@")
    addresses = tuple(parse_address(h) for h in hosts.split(",") if h.strip())
    if not addresses:
        raise RedisURLError("Sentinel URL names no Sentinel address (host:port,...)")
    path = [unquote(p) for p in parts.path.split("/") if p]
    if not path or len(path) > 2 or (len(path) == 2 and not path[1].isdigit()):
        raise RedisURLError("Sentinel URL path must be /MASTER_NAME or /MASTER_NAME/DB")
    query = dict(parse_qsl(parts.query))
    own = {k: v for k, v in query.items() if k.startswith("sentinel_")}
    unknown = set(own) - {"sentinel_username", "sentinel_password", "sentinel_tls",
                          "sentinel_ca_file", "sentinel_tls_insecure"}
    if unknown:
        raise RedisURLError(f"unknown Sentinel URL parameter(s): {', '.join(sorted(unknown))}")
    sentinels = SentinelSettings(
        master=path[0],
        addresses=addresses,
        username=own.get("sentinel_username") or None,
        password=own.get("sentinel_password") or None,
        ssl=own.get("sentinel_tls", "").lower() in _TRUE,
        ssl_ca_certs=own.get("sentinel_ca_file") or None,
        ssl_verify=own.get("sentinel_tls_insecure", "").lower() not in _TRUE,
    )
    rest = urlencode({k: v for k, v in query.items() if k not in own})
    scheme = "rediss" if parts.scheme == "rediss+sentinel" else "redis"
    netloc = (userinfo + "@" if userinfo else "") + "master"
    db = f"/{path[1]}" if len(path) == 2 else ""
    master = parse_url(urlunsplit((scheme, netloc, db, rest, "")))
    for k in ("host", "port", "connection_class"):
        master.pop(k, None)
    if scheme == "rediss":
        master["ssl"] = True
    return sentinels, master


def _sentinel_kwargs(sentinels: SentinelSettings, master: dict[str, Any]) -> dict[str, Any]:
    return sentinels.kwargs(master.get("socket_timeout"), master.get("socket_connect_timeout"))


def sentinel_sync(sentinels: SentinelSettings, **master: Any) -> redis.Redis:
    """A redis-py client on the current master of ``sentinels.master``."""
    manager = redis.sentinel.Sentinel(list(sentinels.addresses),
                                      sentinel_kwargs=_sentinel_kwargs(sentinels, master))
    client: redis.Redis = manager.master_for(sentinels.master, redis_class=redis.Redis, **master)
    return client


def sentinel_async(sentinels: SentinelSettings, **master: Any) -> aioredis.Redis:
    """The same over redis.asyncio."""
    manager = asentinel.Sentinel(list(sentinels.addresses),
                                 sentinel_kwargs=_sentinel_kwargs(sentinels, master))
    client: aioredis.Redis = manager.master_for(sentinels.master, redis_class=aioredis.Redis,
                                                **master)
    return client


def sync_client(url: str, **kwargs: Any) -> redis.Redis:
    """A redis-py client for any URL form above; ``kwargs`` win over the URL's. For a
    cluster URL a ``RedisCluster`` (typed as ``Redis``: it speaks the same commands, and
    what differs on a cluster asks ``is_cluster``)."""
    if is_cluster_url(url):
        return cast(redis.Redis, cluster_sync(url, **kwargs))
    if is_sentinel_url(url):
        sentinels, master = parse_sentinel_url(url)
        return sentinel_sync(sentinels, **{**master, **kwargs})
    client: redis.Redis = redis.Redis.from_url(url, **kwargs)
    return client


def async_client(url: str, **kwargs: Any) -> aioredis.Redis:
    """A redis.asyncio client for any URL form above; ``kwargs`` win over the URL's (a
    cluster URL: a ``RedisCluster``, as ``sync_client``)."""
    if is_cluster_url(url):
        return cast(aioredis.Redis, cluster_async(url, **kwargs))
    if is_sentinel_url(url):
        sentinels, master = parse_sentinel_url(url)
        return sentinel_async(sentinels, **{**master, **kwargs})
    client: aioredis.Redis = aioredis.Redis.from_url(url, **kwargs)
    return client


def sentinel_url(sentinels: SentinelSettings, *, tls: bool = False, db: int | None = None,
                 username: str | None = None, password: str | None = None,
                 query: dict[str, str] | None = None) -> str:
    """The ``redis+sentinel://`` URL of these settings (credentials inside: never log it)."""
    auth = ""
    if username or password:
        auth = quote(username or "", safe="") + (
            ":" + quote(password, safe="") if password else "") + "@"
    hosts = ",".join(f"[{h}]:{p}" if ":" in h else f"{h}:{p}" for h, p in sentinels.addresses)
    params = dict(query or {})
    if sentinels.username:
        params["sentinel_username"] = sentinels.username
    if sentinels.password:
        params["sentinel_password"] = sentinels.password
    if sentinels.ssl:
        params["sentinel_tls"] = "true"
        if not sentinels.ssl_verify:
            params["sentinel_tls_insecure"] = "true"
        if sentinels.ssl_ca_certs:
            params["sentinel_ca_file"] = sentinels.ssl_ca_certs
    path = "/" + quote(sentinels.master, safe="") + (f"/{db}" if db is not None else "")
    scheme = "rediss+sentinel" if tls else "redis+sentinel"
    return urlunsplit((scheme, auth + hosts, path, urlencode(params), ""))
