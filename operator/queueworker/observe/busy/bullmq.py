"""BullMQ workers (bullmq src/commands/includes/prepareJobForProcessing.lua, classes/worker.ts).

BullMQ keeps no worker registry, but a worker created with a `name` (v5.3+)
writes it into every job it takes: `moveToActive` sets the job hash field
`pb` ("processed by") to the worker's name when it locks the job. With
`name: process.env.HOSTNAME` (the pod name) the jobs in `<prefix>:<q>:active`
say which pod runs them. One script walks the active LIST and returns the
`pb` of each job; jobs taken by unnamed workers have none and are not
attributed. Which named workers are alive and idle comes from their
connections (clients.py: `<prefix>:<base64 queue>:w:<name>`), not from here.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from queueworker.observe.busy.base import Adapter, WorkerReport, rows
from queueworker.observe.layouts.base import Command
from queueworker.operator.api import QueueLayout, QueueSpec

ACTIVE_LUA = """
local out = {}
local base = ARGV[1]
for _, id in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do
  local pb = redis.call('HGET', base .. id, 'pb')
  if pb then out[#out + 1] = pb end
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
        names = Counter(name for (name,) in rows(reply, key, 1) if name)
        return [WorkerReport(worker=f"bullmq {name}", hostname=name, pid=None, busy=True,
                             running=n) for name, n in names.items()]
