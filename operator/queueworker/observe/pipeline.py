"""A poll's commands as one pipeline, on one Redis or on a Redis Cluster.

On one Redis (or Sentinel's master) the commands go as they are. On a Redis
Cluster redis-py's cluster pipeline sends each command to the node of its key's
slot, one pipeline per node: a reader whose keys (and whose script's keys) share
a slot works unchanged. A command about a node rather than a key cannot go that
way: `CLIENT LIST` (observe/busy/clients.py) answers for the connections of the
node it is sent to, and the workers of one queue are connected to the primary of
its slot (BullMQ's blocking connection) or to every primary (a cluster client
connects to each). So on a cluster it goes to every primary, in that node's
pipeline (still one round trip per node per poll), and its replies are joined
into one: the connections of the whole cluster. Replicas are left out: workers
write, so they talk to primaries.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis
import redis.asyncio

Args = Sequence[Any]

# Commands answered per node, not per key: on a cluster, asked of every primary.
PER_NODE: frozenset[tuple[str, str]] = frozenset({("CLIENT", "LIST")})


def _per_node(args: Args) -> bool:
    return len(args) >= 2 and (str(args[0]).upper(), str(args[1]).upper()) in PER_NODE


def _queue(pipe: Any, client: Any, commands: Sequence[Args]) -> list[int]:
    """Put ``commands`` on ``pipe``; how many replies each takes."""
    primaries = client.get_primaries() if hasattr(client, "get_primaries") else None
    counts: list[int] = []
    for args in commands:
        if primaries and _per_node(args):
            for node in primaries:
                pipe.execute_command(*args, target_nodes=node)
            counts.append(len(primaries))
        else:
            pipe.execute_command(*args)
            counts.append(1)
    return counts


def joined(replies: Sequence[Any]) -> Any:
    """The replies of one command asked of several nodes as one: the first error, else
    the text of all (one `k=v` line per connection) or their lists, in node order."""
    if len(replies) == 1:
        return replies[0]
    for r in replies:
        if isinstance(r, Exception):
            return r
    if all(isinstance(r, list) for r in replies):
        return [item for r in replies for item in r]
    parts = [r.decode() if isinstance(r, bytes) else str(r) for r in replies]
    return "\n".join(p.rstrip("\n") for p in parts if p)


def _regroup(replies: Sequence[Any], counts: Sequence[int]) -> list[Any]:
    out: list[Any] = []
    i = 0
    for n in counts:
        out.append(joined(replies[i:i + n]))
        i += n
    return out


def execute(client: redis.Redis, commands: Sequence[Args]) -> list[Any]:
    """One reply per command (a failed one as its exception object), one round trip per
    node."""
    pipe = client.pipeline(transaction=False)
    counts = _queue(pipe, client, commands)
    return _regroup(pipe.execute(raise_on_error=False), counts)


async def aexecute(client: redis.asyncio.Redis | Any, commands: Sequence[Args]) -> list[Any]:
    """The same for redis.asyncio clients (a RedisCluster learns its nodes first)."""
    initialize = getattr(client, "initialize", None)
    if hasattr(client, "get_primaries") and initialize is not None:
        await initialize()  # a no-op once the slots are known
    pipe = client.pipeline(transaction=False)
    counts = _queue(pipe, client, commands)
    return _regroup(await pipe.execute(raise_on_error=False), counts)
