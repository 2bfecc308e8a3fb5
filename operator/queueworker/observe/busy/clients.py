"""CLIENT LIST: whose workers wait for work, for libraries that register no workers.

Laravel's `queue:work` and an unnamed BullMQ worker write nothing about
themselves, but while they wait for a job they sit in a blocking command on
their own connection: Laravel with `block_for` in `BLPOP <q>:notify`
(Illuminate/Queue/RedisQueue.php `retrieveNextJob`), BullMQ in
`BZPOPMIN <prefix>:<q>:marker`, and only while it has free concurrency
(bullmq classes/worker.ts `waitForJob`). So a connection blocked in such a
command is a free slot. `CLIENT LIST TYPE normal` shows every connection with
its address (the pod IP), its name and `flags=b` when blocked; a connection is
mapped to a pod by its name (a worker that names its connection after the pod:
Laravel `redis.*.name`, kombu `client_name`, redis-py `client_name`) or by its
IP. A named BullMQ worker's connection is `<prefix>:<base64 queue>:w:<name>`
(worker.ts): it says the worker is alive, blocked or not, and bullmq.py's
`pb` counts say whether it is busy.

What this cannot see: a connection that is not blocked may be running a job
or be between two polls, so its pod stays *unknown*; Dramatiq and arq poll
(dramatiq brokers/redis.py `__next__` sleeps between fetches, arq
`_poll_iteration` reads the queue ZSET) and never block, so CLIENT LIST says
nothing about them; a worker with concurrency above 1 may block while it
runs jobs (a free slot is not an idle pod: name the BullMQ workers). Managed
Redis services may refuse CLIENT (an error: the pods stay unknown).

On a Redis Cluster CLIENT LIST answers for one node's connections: the poll asks
every primary and reads their lists as one (observe/pipeline.py).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

from queueworker.observe.busy.base import Adapter, WorkerReport
from queueworker.observe.layouts.base import Command, LayoutError, text
from queueworker.operator.api import QueueLayout, QueueSpec

# Layouts whose idle workers show as blocked connections.
LAYOUTS: frozenset[QueueLayout] = frozenset({QueueLayout.laravel, QueueLayout.bullmq})
WAITING = frozenset({"blpop", "brpop", "blmove", "brpoplpush", "blmpop", "bzpopmin",
                     "bzpopmax", "bzmpop"})
NAMED_BULLMQ = "bullmq named connection"  # the `registry` of a named worker's report
_BULLMQ_NAMED = re.compile(r"^[^:\s]+:[A-Za-z0-9+/=]+:w:(?P<name>\S+)$")


@dataclass(frozen=True)
class Client:
    id: str
    ip: str | None
    name: str
    blocked: bool
    cmd: str


def _ip(addr: str) -> str | None:
    host = addr.rpartition(":")[0]
    return host.strip("[]") or None


def _client(fields: dict[str, Any]) -> Client:
    flags = str(fields.get("flags") or "")
    return Client(str(fields.get("id") or ""), _ip(str(fields.get("addr") or "")),
                  str(fields.get("name") or ""), "b" in flags,
                  str(fields.get("cmd") or "").lower())


def parse_list(reply: Any, key: str = "CLIENT LIST") -> list[Client]:
    """The reply as text (one `k=v k=v` line per connection) or as redis-py's dicts."""
    if isinstance(reply, list):
        if not all(isinstance(c, dict) for c in reply):
            raise LayoutError(key, f"unexpected reply {reply!r:.60}")
        return [_client({str(text(k)): text(v) for k, v in c.items()}) for c in reply]
    body = text(reply)
    if body is None:
        raise LayoutError(key, f"unexpected reply {reply!r:.60}")
    out = []
    for line in body.splitlines():
        fields = dict(part.partition("=")[::2] for part in line.split(" ") if "=" in part)
        if fields:
            out.append(_client(fields))
    return out


def reports(clients: Iterable[Client]) -> list[WorkerReport]:
    """A report per connection that says something: a named BullMQ worker (alive), or a
    connection blocked waiting for work (a free slot: idle)."""
    out: list[WorkerReport] = []
    for c in clients:
        named = _BULLMQ_NAMED.match(c.name)
        if named is not None:
            out.append(WorkerReport(worker=f"client {c.id}", hostname=named["name"], pid=None,
                                    busy=False, running=0, ip=None, registry=NAMED_BULLMQ))
        elif c.blocked and c.cmd in WAITING:
            out.append(WorkerReport(worker=f"client {c.id}", hostname=c.name or None,
                                    pid=None, busy=False, running=0, ip=c.ip))
    return out


class ClientsAdapter(Adapter):
    """CLIENT LIST as one more command of the poll's pipeline (once per poll)."""

    layout: ClassVar[QueueLayout] = QueueLayout.laravel
    label: ClassVar[str | None] = "CLIENT LIST"

    def registry(self, q: QueueSpec) -> str:
        return "CLIENT LIST"

    def command(self, q: QueueSpec) -> Command:
        return Command(("CLIENT", "LIST", "TYPE", "normal"), "CLIENT LIST")

    def parse(self, reply: Any, key: str) -> list[WorkerReport]:
        return reports(parse_list(reply, key))
