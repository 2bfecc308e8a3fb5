"""The one connection factory: URL forms, Sentinel URLs, the env folded in (no server)."""

from __future__ import annotations

import pytest
import redis
import redis.asyncio as aioredis
import redis.asyncio.sentinel as asentinel
import redis.sentinel

from queueworker.common.redact import redact
from queueworker.worker import connection
from queueworker.worker.config import (
    ENV_REDIS_DB,
    ENV_REDIS_PASSWORD,
    ENV_REDIS_SENTINEL_PASSWORD,
    ENV_REDIS_SENTINEL_TLS,
    ENV_REDIS_TLS,
    redis_url_from,
)


def test_sentinel_url_splits_master_and_sentinel_settings() -> None:
    sentinels, master = connection.parse_sentinel_url(
        "rediss+sentinel://app:m%40pw@s1:26380,[::1]:26381,s3/mymaster/2"
        "?sentinel_password=spw&sentinel_tls=true&sentinel_tls_insecure=true"
        "&ssl_ca_certs=/ca.pem&socket_timeout=2")
    assert sentinels.master == "mymaster"
    assert sentinels.addresses == (("s1", 26380), ("::1", 26381), ("s3", 26379))
    assert (sentinels.password, sentinels.ssl, sentinels.ssl_verify) == ("spw", True, False)
    assert master == {"username": "app", "password": "m@pw", "db": 2, "ssl": True,
                      "ssl_ca_certs": "/ca.pem", "socket_timeout": 2.0}


@pytest.mark.parametrize(("url", "why"), [
    ("redis+sentinel:///mymaster", "no Sentinel address"),
    ("redis+sentinel://s1:26379", "path must be"),
    ("redis+sentinel://s1:26379/m/x", "path must be"),
    ("redis+sentinel://s1:99999/m", "bad Sentinel address"),
    ("redis+sentinel://s1/m?sentinel_pasword=x", "sentinel_pasword"),
])
def test_bad_sentinel_urls_say_what_is_wrong(url: str, why: str) -> None:
    with pytest.raises(connection.RedisURLError, match=why):
        connection.parse_sentinel_url(url)


def test_the_factory_gives_sentinel_managed_clients_for_sentinel_urls() -> None:
    url = "redis+sentinel://127.0.0.1:1/mymaster/0"
    sync = connection.sync_client(url, decode_responses=True)
    pool = sync.connection_pool
    assert isinstance(pool, redis.sentinel.SentinelConnectionPool)
    assert pool.service_name == "mymaster"
    assert pool.connection_kwargs["decode_responses"] is True
    async_ = connection.async_client(url)
    assert isinstance(async_, aioredis.Redis)
    assert isinstance(async_.connection_pool, asentinel.SentinelConnectionPool)
    plain = connection.sync_client("redis://127.0.0.1:1/3")
    assert plain.connection_pool.connection_kwargs["db"] == 3


def test_sentinel_url_round_trips_through_settings() -> None:
    settings = connection.SentinelSettings("m", (("a", 1), ("b", 2)), username="su",
                                           password="s&p", ssl=True)
    url = connection.sentinel_url(settings, tls=True, db=4, password="mp")
    back, master = connection.parse_sentinel_url(url)
    assert back == settings
    assert (master["password"], master["db"], master["ssl"]) == ("mp", 4, True)
    assert "s&p" not in redact(url)
    assert "mp" not in redact(url).split("@")[0]


def test_worker_env_folds_sentinel_credentials_tls_and_db_into_the_url() -> None:
    url = redis_url_from("redis+sentinel://s1:26379,s2:26379/mymaster", {
        ENV_REDIS_PASSWORD: "mpw", ENV_REDIS_SENTINEL_PASSWORD: "spw", ENV_REDIS_DB: "5",
        ENV_REDIS_TLS: "true", ENV_REDIS_SENTINEL_TLS: "true"})
    sentinels, master = connection.parse_sentinel_url(url)
    assert sentinels.addresses == (("s1", 26379), ("s2", 26379))
    assert (sentinels.master, sentinels.password, sentinels.ssl) == ("mymaster", "spw", True)
    assert (master["password"], master["db"], master["ssl"]) == ("mpw", 5, True)
    assert "spw" not in redact(url)
    assert "mpw" not in redact(url)
