"""Redis Cluster URLs, without a server: parsed for RedisCluster clients, refused with
one clear message wherever the native layout would run on them; which foreign layouts a
cluster spec takes (bullmq and laravel with a hash tag, list, stream)."""

from __future__ import annotations

import argparse

import pytest

from queueworker.observe import connections
from queueworker.operator import api, api_queues
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
    with pytest.raises(SpecError, match="Sidekiq, Dramatiq and arq do not support Redis Cluster"):
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


def _cluster_spec(*queues: dict[str, str]) -> api.QueueWorkerSpec:
    return parse_spec({"redis": {"url": "redis+cluster://r:7000"}, "queues": list(queues),
                       "template": TEMPLATE})


@pytest.mark.parametrize("queue", [
    {"name": "render", "layout": "bullmq", "keyPrefix": "{bull}"},
    {"name": "{render}", "layout": "bullmq"},  # BullMQ's docs: the tag in the name works too
    {"name": "{default}", "layout": "laravel"},
    {"name": "default", "layout": "laravel", "keyPrefix": "{app}:"},
    {"name": "jobs", "layout": "list"},
    {"name": "events", "layout": "stream", "consumerGroup": "g"},
])
def test_a_cluster_spec_takes_foreign_queues_whose_keys_share_a_slot(
        queue: dict[str, str]) -> None:
    assert _cluster_spec(queue).queues[0].name == queue["name"]


@pytest.mark.parametrize(("queue", "why"), [
    ({"name": "render", "layout": "bullmq"}, "bullmq queue needs a hash tag in keyPrefix"),
    ({"name": "render", "layout": "bullmq", "keyPrefix": "{}"}, "bullmq queue needs a hash"),
    ({"name": "default", "layout": "laravel"}, "laravel queue needs a hash tag in its name"),
    ({"name": "default", "layout": "rq"}, "RQ, Celery [(]kombu[)], Sidekiq, Dramatiq and arq"),
    ({"name": "celery", "layout": "celery"}, "do not support Redis Cluster"),
    ({"name": "default", "layout": "dramatiq"}, "do not support Redis Cluster"),
    ({"name": "arq:queue", "layout": "arq"}, "do not support Redis Cluster"),
])
def test_a_cluster_spec_refuses_what_its_library_cannot_run_with_the_reason(
        queue: dict[str, str], why: str) -> None:
    with pytest.raises(SpecError, match=why):
        _cluster_spec({"name": "n"}, queue)
    # the same queue on one Redis is fine
    parse_spec({"redis": {"url": "redis://r:6379"}, "queues": [queue], "template": TEMPLATE})


def test_the_python_hash_tag_rule_is_redis_clusters() -> None:
    # Redis hashes the text between the first { and the first } after it, if not empty.
    tagged = ["{a}", "x{a}y", "{{a}", "x{a}{b}", "{a:b}:c"]
    untagged = ["a", "{}", "x{}{a}", "{a", "a}"]
    assert all(api_queues.has_hash_tag(k) for k in tagged)
    assert not any(api_queues.has_hash_tag(k) for k in untagged)
