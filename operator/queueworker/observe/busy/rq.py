"""RQ workers (rq/worker/base.py, rq/worker_registration.py, rq/executions.py).

Every live worker is a member of SET `rq:workers` naming its HASH
`rq:worker:<name>`: `hostname` (socket.gethostname(): the pod name), `pid`,
`state` (`busy` from the moment a job is taken, executions.py
`prepare_execution`, back to `idle` after it), `death` once it has stopped.
RQ 2 also writes `current_job`; RQ 3 keeps the running executions in SET
`rq:worker:<name>:executions` instead. A killed worker's member stays in the
SET after its hash has expired (worker_ttl + 60 s): a member without a hash,
or with `death`, is not a worker. keyPrefix replaces `rq` (RQ_KEY_PREFIX).
"""

from __future__ import annotations

from typing import Any

from queueworker.observe.busy.base import Adapter, WorkerReport, number, rows
from queueworker.observe.layouts.base import Command
from queueworker.operator.api import QueueLayout, QueueSpec

WORKERS_LUA = """
local out = {}
for _, k in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local f = redis.call('HMGET', k, 'hostname', 'pid', 'state', 'current_job', 'death')
  if f[3] and not f[5] then
    local n = redis.call('SCARD', k .. ':executions')
    for _, v in ipairs({k, f[1] or '', f[2] or '', f[3], f[4] or '', tostring(n)}) do
      out[#out + 1] = v
    end
  end
end
return out
"""


class RQAdapter(Adapter):
    layout = QueueLayout.rq

    def registry(self, q: QueueSpec) -> str:
        return f"{q.key_prefix or 'rq'}:workers"

    def command(self, q: QueueSpec) -> Command:
        key = self.registry(q)
        return Command(("EVAL", WORKERS_LUA, 1, key), key)

    def parse(self, reply: Any, key: str) -> list[WorkerReport]:
        out: list[WorkerReport] = []
        for worker, hostname, pid, state, current_job, executions in rows(reply, key, 6):
            running = number(executions) or (1 if current_job else 0)
            out.append(WorkerReport(worker=worker or "", hostname=hostname, pid=number(pid),
                                    busy=state == "busy" or running > 0, running=running))
        return out
