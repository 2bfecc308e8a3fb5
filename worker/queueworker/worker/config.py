"""Worker settings: defaults, environment (what the operator sets), command line.

Environment: QUEUEWORKER_REDIS_URL (any form of ``connection.py``, with
QUEUEWORKER_REDIS_PASSWORD, _USERNAME, _DB, _TLS, _CA_FILE, _TLS_INSECURE and
for Sentinel _SENTINEL_USERNAME, _SENTINEL_PASSWORD, _SENTINEL_TLS,
_SENTINEL_TLS_INSECURE, _SENTINEL_CA_FILE: see ``redis_url_from``),
QUEUEWORKER_QUEUES (comma list, in priority order), QUEUEWORKER_HANDLER, QUEUEWORKER_PREFIX,
QUEUEWORKER_DRAIN_DEADLINE (seconds after SIGTERM), QUEUEWORKER_METRICS_PORT,
QUEUEWORKER_CONCURRENCY, POD_NAME. Command-line options win over them.

The ``ENV_*`` names below are the one list of them: the operator's Deployment
builder (queueworker.operator.cluster.deployment) and local mode
(queueworker.local.session, .pool) set the environment through these names.
"""

from __future__ import annotations

import functools
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

import redis

from queueworker.worker import keys
from queueworker.worker.broker import RateLimit
from queueworker.worker.connection import is_sentinel_url, sync_client

DEFAULT_REDIS_URL = "redis://localhost:6379/0"

# The environment a worker reads (what the operator and local mode set).
ENV_REDIS_URL = "QUEUEWORKER_REDIS_URL"
ENV_REDIS_PASSWORD = "QUEUEWORKER_REDIS_PASSWORD"
ENV_REDIS_USERNAME = "QUEUEWORKER_REDIS_USERNAME"
ENV_REDIS_DB = "QUEUEWORKER_REDIS_DB"
ENV_REDIS_TLS = "QUEUEWORKER_REDIS_TLS"
ENV_REDIS_TLS_INSECURE = "QUEUEWORKER_REDIS_TLS_INSECURE"
ENV_REDIS_CA_FILE = "QUEUEWORKER_REDIS_CA_FILE"
# Redis behind Sentinel (QUEUEWORKER_REDIS_URL=redis+sentinel://...): the Sentinels' own
# credentials and TLS, folded into the URL's sentinel_* parameters (worker/connection.py).
ENV_REDIS_SENTINEL_USERNAME = "QUEUEWORKER_REDIS_SENTINEL_USERNAME"
ENV_REDIS_SENTINEL_PASSWORD = "QUEUEWORKER_REDIS_SENTINEL_PASSWORD"
ENV_REDIS_SENTINEL_TLS = "QUEUEWORKER_REDIS_SENTINEL_TLS"
ENV_REDIS_SENTINEL_TLS_INSECURE = "QUEUEWORKER_REDIS_SENTINEL_TLS_INSECURE"
ENV_REDIS_SENTINEL_CA_FILE = "QUEUEWORKER_REDIS_SENTINEL_CA_FILE"
ENV_QUEUES = "QUEUEWORKER_QUEUES"
ENV_HANDLER = "QUEUEWORKER_HANDLER"
ENV_PREFIX = "QUEUEWORKER_PREFIX"
ENV_DRAIN_DEADLINE = "QUEUEWORKER_DRAIN_DEADLINE"
ENV_METRICS_PORT = "QUEUEWORKER_METRICS_PORT"
ENV_CONCURRENCY = "QUEUEWORKER_CONCURRENCY"
ENV_POD_NAME = "POD_NAME"


@dataclass
class Settings:
    redis_url: str = DEFAULT_REDIS_URL
    prefix: str = keys.DEFAULT_PREFIX
    queues: list[str] = field(default_factory=lambda: ["default"])
    handlers: list[str] = field(default_factory=list)
    concurrency: int = 10
    # jobs fetched beyond free slots; None: adaptive, only for jobs of a few ms (fetcher.py)
    prefetch: int | None = None
    max_jobs: int | None = None
    max_time: float | None = None
    stop_when_empty: bool = False
    lease: float = 30.0  # seconds; renewed every lease/3 while the job runs
    timeout: float = 300.0  # default per-attempt limit for jobs that set none (0: none)
    drain_deadline: float = 30.0
    heartbeat_interval: float = 5.0  # the heartbeat key lives 3 intervals
    reap_interval: float = 2.0
    poll_interval: float = 1.0  # longest idle wait (delayed jobs become due without a wake-up)
    result_ttl: int = 3600  # seconds a finished job's hash is kept (0: deleted at once)
    failed_max_age: float = 7 * 86400.0
    failed_max_count: int = 100_000
    max_lost: int = 5  # lease expiries before a job is failed as a poison pill (0: never)
    park_delay: float = 0.5  # a job over its concurrency limit waits this long in delayed
    rate_limits: dict[str, RateLimit] = field(default_factory=dict)
    metrics_port: int = 0  # 0: no HTTP server
    pod: str = ""
    log_level: str = "info"

    @property
    def tick(self) -> float:
        """Seconds between beats (heartbeat + lease renewal)."""
        return max(0.05, min(self.heartbeat_interval, self.lease / 3))

    def validate(self) -> None:
        if not self.queues or any(not q or "{" in q or "}" in q for q in self.queues):
            raise ValueError(f"bad queue list {self.queues!r}")
        if self.concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if self.lease <= 0:
            raise ValueError("lease must be positive")
        if self.drain_deadline < 0:
            raise ValueError("drain deadline must not be negative")


def split_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def redis_url_from(url: str, env: Mapping[str, str]) -> str:
    """The URL with what the operator passes beside it folded in.

    The operator keeps the password in a Secret and hands it over as
    QUEUEWORKER_REDIS_PASSWORD (QUEUEWORKER_REDIS_USERNAME, _DB likewise), and
    for TLS sets QUEUEWORKER_REDIS_TLS=true, QUEUEWORKER_REDIS_CA_FILE (a mounted
    Secret) or QUEUEWORKER_REDIS_TLS_INSECURE=true. redis-py reads all of it
    from one URL, so every client (worker, CLI) connects the same way.
    """
    parts = urlsplit(url)
    user = env.get(ENV_REDIS_USERNAME) or (unquote(parts.username or "") or None)
    password = env.get(ENV_REDIS_PASSWORD) or (
        unquote(parts.password) if parts.password else None)
    scheme = parts.scheme
    if env.get(ENV_REDIS_TLS, "").lower() == "true" and scheme in (
            "redis", "redis+sentinel", "redis+cluster"):
        scheme = scheme.replace("redis", "rediss", 1)
    host = parts.netloc.rsplit("@", 1)[-1]
    auth = ""
    if user or password:
        auth = quote(user or "", safe="") + (":" + quote(password, safe="") if password else "")
        auth += "@"
    path = parts.path
    if env.get(ENV_REDIS_DB):
        # a Sentinel URL's path is /MASTER[/DB]: the db is its second part
        keep = [p for p in path.split("/") if p][:1] if is_sentinel_url(url) else []
        path = "/" + "/".join([*keep, env[ENV_REDIS_DB]])
    query = dict(parse_qsl(parts.query))
    if env.get(ENV_REDIS_CA_FILE):
        query["ssl_ca_certs"] = env[ENV_REDIS_CA_FILE]
    if env.get(ENV_REDIS_TLS_INSECURE, "").lower() == "true":
        query["ssl_cert_reqs"] = "none"
    if is_sentinel_url(url):
        query.update(_sentinel_query(env))
    out = urlunsplit((scheme, auth + host, path, urlencode(query), parts.fragment))
    if scheme == "unix" and not out.startswith("unix://"):
        # urlunsplit drops the // of a URL without a host (unix:/path), which redis-py's
        # sync client refuses (the asyncio one reads both).
        out = "unix://" + out[len("unix:"):]
    return out


def _sentinel_query(env: Mapping[str, str]) -> dict[str, str]:
    out = {}
    for name, param in ((ENV_REDIS_SENTINEL_USERNAME, "sentinel_username"),
                        (ENV_REDIS_SENTINEL_PASSWORD, "sentinel_password"),
                        (ENV_REDIS_SENTINEL_CA_FILE, "sentinel_ca_file")):
        if env.get(name):
            out[param] = env[name]
    for name, param in ((ENV_REDIS_SENTINEL_TLS, "sentinel_tls"),
                        (ENV_REDIS_SENTINEL_TLS_INSECURE, "sentinel_tls_insecure")):
        if env.get(name, "").lower() == "true":
            out[param] = "true"
    return out


def worker_redis_url(env: Mapping[str, str] | None = None) -> str:
    """The worker's own Redis, as the Deployment (or local mode) passed it, with the
    password, user, db and TLS folded in: for handlers that keep results or
    counters beside the queue (`connection.sync_client(worker_redis_url())`, which
    also reads the redis+sentinel:// form; or simply `worker_redis()`)."""
    env = os.environ if env is None else env
    return redis_url_from(env.get(ENV_REDIS_URL) or DEFAULT_REDIS_URL, env)


@functools.cache
def worker_redis() -> redis.Redis:
    """One client per process on `worker_redis_url()`, made on first use (redis-py's
    client is thread-safe: sync handlers run in threads)."""
    return sync_client(worker_redis_url())


def from_env(env: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if env is None else env
    s = Settings()
    s.redis_url = redis_url_from(env.get(ENV_REDIS_URL) or s.redis_url, env)
    s.prefix = env.get(ENV_PREFIX) or s.prefix
    if env.get(ENV_QUEUES):
        s.queues = split_list(env[ENV_QUEUES])
    if env.get(ENV_HANDLER):
        s.handlers = split_list(env[ENV_HANDLER])
    if env.get(ENV_DRAIN_DEADLINE):
        s.drain_deadline = float(env[ENV_DRAIN_DEADLINE])
    if env.get(ENV_METRICS_PORT):
        s.metrics_port = int(env[ENV_METRICS_PORT])
    if env.get(ENV_CONCURRENCY):
        s.concurrency = int(env[ENV_CONCURRENCY])
    s.pod = env.get(ENV_POD_NAME) or socket.gethostname()
    return s
