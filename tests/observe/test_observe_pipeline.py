"""observe/pipeline.py without a cluster: one reply per command, and how the replies of a
command asked of every primary (CLIENT LIST) are read as one. The cluster path itself runs
on a real cluster in tests/redis_topologies/test_topology_cluster_foreign.py."""

from __future__ import annotations

import redis

from queueworker.observe import pipeline
from queueworker.observe.busy.clients import parse_list


def test_replies_of_every_primary_read_as_one() -> None:
    a = b"id=1 addr=10.0.0.1:5 name=pod-a flags=b cmd=blpop\n"
    b = "id=2 addr=10.0.0.2:6 name=pod-b flags=N cmd=evalsha\n"
    joined = pipeline.joined([a, b])
    assert [c.name for c in parse_list(joined)] == ["pod-a", "pod-b"]
    assert pipeline.joined([[{"id": "1"}], [{"id": "2"}]]) == [{"id": "1"}, {"id": "2"}]
    refused = redis.ResponseError("NOPERM")  # one node refusing: the pods stay unknown
    assert pipeline.joined([a, refused]) is refused
    assert pipeline.joined([b]) is b


def test_on_one_redis_each_command_is_sent_once(redis_url: str) -> None:
    r = redis.Redis.from_url(redis_url)
    r.rpush("pipeline-q", "x", "y")
    replies = pipeline.execute(r, [("LLEN", "pipeline-q"), ("CLIENT", "LIST", "TYPE", "normal"),
                                   ("HGET", "pipeline-q", "f")])
    assert replies[0] == 2
    assert len(parse_list(replies[1])) >= 1  # this connection at least
    assert isinstance(replies[2], redis.ResponseError)  # WRONGTYPE: its own error only
    r.close()
