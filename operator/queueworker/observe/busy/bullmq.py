"""BullMQ workers (bullmq src/commands/includes/prepareJobForProcessing.lua, classes/worker.ts).

BullMQ keeps no worker registry, but a worker created with a `name` (v5.3+)
writes it into the jobs it takes: `moveToActive` sets the job hash field
`pb` ("processed by") to the worker's name when it locks the job. With
`name: process.env.HOSTNAME` (the pod name) the jobs in `<prefix>:<q>:active`
say which pod runs them. One script walks the active LIST and returns the
`pb` of each job. Which named workers are alive and idle comes from their
connections (clients.py: `<prefix>:<base64 queue>:w:<name>`), not from here.

Not every take writes `pb`: before 5.41.1 a job taken in the same call that
completes the previous one (`moveToFinished` with fetch-next, the usual path
of a busy worker) has none (BullMQ issue 3073; benchmarks/RELIABILITY.md,
"Foreign workers with 30-60 s jobs"), and jobs of unnamed workers never
have one. Such a job runs in some pod nobody can name, so while one is active
no named worker is read idle: their pods stay unknown (`UNATTRIBUTED`,
applied by `hide_named_idle`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from queueworker.observe.busy.base import Adapter, WorkerReport, rows
from queueworker.observe.busy.clients import NAMED_BULLMQ
from queueworker.observe.layouts.base import Command
from queueworker.operator.api import QueueLayout, QueueSpec

UNATTRIBUTED = "bullmq active jobs without pb"
ACTIVE_LUA = """
local out = {}
local base = ARGV[1]
for _, id in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do
  local pb = redis.call('HGET', base .. id, 'pb')
  out[#out + 1] = pb or ''
end
return out
"""


class BullMQAdapter(Adapter):
    layout = QueueLayout.bullmq

    def registry(self, q: QueueSpec) -> str:
        return f"{q.key_prefix or 'bull'}:{q.name}:active"

    def command(self, q: QueueSpec) -> Command:
        key = self.registry(q)
        return Command(("EVAL", ACTIVE_LUA, 1, key, f"{q.key_prefix or 'bull'}:{q.name}:"), key)

    def parse(self, reply: Any, key: str) -> list[WorkerReport]:
        taken = [name for (name,) in rows(reply, key, 1)]
        names = Counter(name for name in taken if name)
        out = [WorkerReport(worker=f"bullmq {name}", hostname=name, pid=None, busy=True,
                            running=n) for name, n in names.items()]
        if None in taken:  # active jobs no worker name is written on
            out.append(WorkerReport(worker=UNATTRIBUTED, hostname=None, pid=None, busy=True,
                                    running=taken.count(None), registry=key))
        return out


def hide_named_idle(reports: Sequence[WorkerReport]) -> list[WorkerReport]:
    """Without the named workers' idle reports while a job runs in a pod no `pb` names
    (one of them may run it): their pods are unknown, not idle."""
    if not any(r.worker == UNATTRIBUTED for r in reports):
        return list(reports)
    return [r for r in reports if r.registry != NAMED_BULLMQ]
