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


TEMPLATE = {"spec": {"containers": [{"name": "w", "image": "i"}]}}


def test_a_cluster_spec_takes_native_queues_and_refuses_others_with_the_reason() -> None:
    spec = parse_spec({"redis": {"url": "redis+cluster://r1:7000,r2:7001"},
                       "queues": [{"name": "a"}, {"name": "b", "layout": "native"}],
                       "template": TEMPLATE})
    target = connections.target_from_spec(spec.redis)
    assert target.url == "redis+cluster://r1:7000,r2:7001"
    with pytest.raises(SpecError, match="on a Redis Cluster only native queues"):
        parse_spec({"redis": {"url": "redis+cluster://r:7000"},
                    "queues": [{"name": "a"}, {"name": "b", "layout": "sidekiq"}],
                    "template": TEMPLATE})
    # a cluster URL kept in a Secret: its credentials kept out of the URL, TLS by the spec
    ref = api.RedisSpec(url_secret_ref=api.SecretKeyRef(name="s", key="url"),
                        tls=api.RedisTLS(enabled=True))
    target = connections.target_from_spec(ref, lambda *_: "redis+cluster://:pw@r:7000,r:7001")
    assert (target.url, target.password, target.ssl) == (
        "rediss+cluster://r:7000,r:7001", "pw", True)
    assert connections.url_with_credentials(target) == "rediss+cluster://:pw@r:7000,r:7001"
    with pytest.raises(connections.RedisConfigError, match="only db 0"):
        connections.target_from_spec(api.RedisSpec(url="redis+cluster://r:7000", db=2))
