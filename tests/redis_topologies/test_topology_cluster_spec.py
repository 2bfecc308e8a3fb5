"""Redis Cluster URLs, without a server: parsed for RedisCluster clients, refused with
one clear message wherever the native layout would run on them."""

from __future__ import annotations

import argparse

import pytest

from queueworker.observe import connections
from queueworker.operator import api
from queueworker.operator.validation import SpecError, parse_spec
from queueworker.worker import cli_common, connection

URL = "redis+cluster://:pw@10.0.0.1:7000,10.0.0.2,[fd00::3]:7002?socket_timeout=2"


def test_cluster_url_gives_start_nodes_and_kwargs() -> None:
    nodes, kwargs = connection.parse_cluster_url(URL)
    assert nodes == (("10.0.0.1", 7000), ("10.0.0.2", 6379), ("fd00::3", 7002))
    assert kwargs == {"password": "pw", "socket_timeout": 2.0}
    with pytest.raises(connection.RedisURLError, match="only db 0"):
        connection.parse_cluster_url("redis+cluster://a:1/3")


def test_the_native_async_client_is_a_cluster_client() -> None:
    client = connection.async_client(URL)
    assert connection.is_cluster(client)


def test_the_cli_says_an_unreachable_cluster_in_one_line() -> None:
    args = argparse.Namespace(redis_url="redis+cluster://:pw@127.0.0.1:1", prefix=None)
    with pytest.raises(cli_common.CliError) as info:
        cli_common.connect(args)
    message = str(info.value)
    assert "cannot connect to Redis" in message
    assert "pw" not in message
    assert "\n" not in message


def test_a_spec_naming_a_cluster_is_invalid_with_the_reason() -> None:
    with pytest.raises(SpecError, match="Redis Cluster is not supported"):
        parse_spec({"redis": {"url": "redis+cluster://r:7000"}, "queues": [{"name": "q"}],
                    "template": {"spec": {"containers": [{"name": "w", "image": "i"}]}}})
    # a cluster URL kept in a Secret: InvalidRedis with the same reason
    spec = api.RedisSpec(url_secret_ref=api.SecretKeyRef(name="s", key="url"))
    with pytest.raises(connections.RedisConfigError,
                       match=r"spec.redis.urlSecretRef: Redis Cluster is not supported"):
        connections.target_from_spec(spec, lambda *_: "rediss+cluster://r:7000")
