"""arq workers that keep a health record per pod (arq/worker.py `record_health`).

arq keeps no worker registry, but every worker writes a health record at most
every `health_check_interval` seconds (its poll loop, `heart_beat`), with
`PSETEX <health_check_key> (interval + 1) s` and the text
`<%b-%d %H:%M:%S> j_complete=.. j_failed=.. j_retried=.. j_ongoing=N queued=M`,
where `j_ongoing` counts its job tasks not done (each a job it took and runs).
The key defaults to `<queue_name>:health-check`, one for all the workers of
a queue (the last writer wins); a worker given
`health_check_key=f"{queue_name}:health-check:{os.environ['HOSTNAME']}"`
(docs/workers/arq.md) writes its own. The operator knows its pods' names, so
it reads `<queue>:health-check:<pod>` for each pod in the poll's pipeline (one
script, no SCAN): a record with `j_ongoing` > 0 is busy, 0 idle; no record
(the worker is not opted in, not started, or its record expired: the TTL is
its interval + 1 s, so a record that is there is fresh) leaves the pod
unknown. A record is as old as the interval: a job taken since the last write
is not in it (as with Sidekiq's beat), so keep the interval short (1-2 s).
arq removes the key when it closes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from queueworker.observe.busy.base import Adapter, PodRef, WorkerReport, rows
from queueworker.observe.layouts.base import Command, LayoutError
from queueworker.operator.api import QueueLayout, QueueSpec

ONGOING = re.compile(r"\bj_ongoing=(\d+)\b")

# {key, record} for each of KEYS that holds a record.
RECORDS_LUA = """
local out = {}
for _, k in ipairs(KEYS) do
  local v = redis.call('GET', k)
  if v then
    out[#out + 1] = k
    out[#out + 1] = v
  end
end
return out
"""


def health_key(queue: str, pod: str) -> str:
    return f"{queue}:health-check:{pod}"


class ArqAdapter(Adapter):
    layout = QueueLayout.arq
    per_pod = True

    def registry(self, q: QueueSpec) -> str:
        return health_key(q.name, "")

    def command(self, q: QueueSpec) -> Command:
        return self.command_for(q, ())

    def command_for(self, q: QueueSpec, pods: Sequence[PodRef]) -> Command:
        keys = sorted({health_key(q.name, p.name) for p in pods})
        return Command(("EVAL", RECORDS_LUA, len(keys), *keys), self.registry(q))

    def parse(self, reply: Any, key: str) -> list[WorkerReport]:
        out: list[WorkerReport] = []
        for record_key, record in rows(reply, key, 2):
            if not record_key or not record_key.startswith(key):
                raise LayoutError(key, f"unexpected key {record_key!r:.60}")
            m = ONGOING.search(record or "")
            if m is None:
                raise LayoutError(record_key, f"no j_ongoing in {record!r:.60}")
            running = int(m[1])
            out.append(WorkerReport(worker=f"arq {record_key}", hostname=record_key[len(key):],
                                    pid=None, busy=running > 0, running=running,
                                    registry=key))
        return out
