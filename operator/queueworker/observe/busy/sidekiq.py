"""Sidekiq processes (sidekiq lib/sidekiq/launcher.rb `❤`, `to_data`; util.rb `identity`).

SET `processes` lists identities (`hostname:pid:nonce`); HASH `<identity>`
(TTL 60 s, rewritten every beat: 5 s up to 6.x, 10 s from 7) holds `busy`
(threads running a job), `beat`, `quiet` (`true` once TSTP'd or stopping) and
`info`, JSON with `hostname` (ENV["DYNO"] or the host name: the pod name) and
`pid`. A SIGKILLed process stays in the SET until its hash expires and a
cleanup runs: a member without a hash is not a process. keyPrefix is a
redis-namespace namespace (`ns:` before every key, not before the members).
Busy is as fresh as the last beat.

Quiet (`quiet`): LPUSH `<identity>-signals` TSTP with a 60 s EXPIRE, as
Sidekiq's own `Sidekiq::Process#quiet!` does (api.rb `signal`, the same in
6.4 and 7.x/8.x); the process RPOPs that list at its next beat and sends the
signal to itself (launcher.rb `❤`). The list is a key like any other, so a
namespace prefixes it too.
"""

from __future__ import annotations

import json
from typing import Any

from queueworker.observe.busy.base import Adapter, WorkerReport, number, rows
from queueworker.observe.layouts.base import Command
from queueworker.operator.api import QueueLayout, QueueSpec

PROCESSES_LUA = """
local out = {}
for _, p in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local f = redis.call('HMGET', ARGV[1] .. p, 'busy', 'quiet', 'info', 'beat')
  if f[3] then
    for _, v in ipairs({p, f[1] or '', f[2] or '', f[3], f[4] or ''}) do out[#out + 1] = v end
  end
end
return out
"""


def _identity(info: str | None) -> tuple[str | None, int | None]:
    try:
        doc = json.loads(info or "")
    except ValueError:
        return None, None
    if not isinstance(doc, dict):
        return None, None
    host = doc.get("hostname")
    return (str(host) if host else None), number(str(doc.get("pid") or ""))


def _seconds(beat: str | None) -> float | None:
    """`beat` is `Time.now.to_f`; anything else reads as no time."""
    try:
        return float(beat) if beat else None
    except ValueError:
        return None


class SidekiqAdapter(Adapter):
    layout = QueueLayout.sidekiq
    can_quiet = True

    def _ns(self, q: QueueSpec) -> str:
        return f"{q.key_prefix}:" if q.key_prefix else ""

    def registry(self, q: QueueSpec) -> str:
        return f"{self._ns(q)}processes"

    def command(self, q: QueueSpec) -> Command:
        key = self.registry(q)
        return Command(("EVAL", PROCESSES_LUA, 1, key, self._ns(q)), key)

    def parse(self, reply: Any, key: str) -> list[WorkerReport]:
        out: list[WorkerReport] = []
        for identity, busy, quiet, info, beat in rows(reply, key, 5):
            hostname, pid = _identity(info)
            running = number(busy) or 0
            out.append(WorkerReport(worker=identity or "", hostname=hostname, pid=pid,
                                    busy=running > 0, running=running, quiet=quiet == "true",
                                    beat_at=_seconds(beat), registry=key))
        return out

    def quiet(self, report: WorkerReport) -> tuple[Command, ...] | None:
        ns = report.registry[:-len("processes")] if report.registry.endswith("processes") else ""
        key = f"{ns}{report.worker}-signals"
        return (Command(("LPUSH", key, "TSTP"), key), Command(("EXPIRE", key, 60), key))
