"""Chains and batches of native jobs (Laravel ``Bus::chain`` / ``Bus::batch``, Celery
``chain`` / ``group`` + ``chord``, BullMQ flows).

    from queueworker.worker.flows import Flows, step

    flows = Flows(Redis.from_url(url))
    chain_id = flows.chain([step("media", {"file": f}), step("media", {"op": "thumb"}),
                            step("mail", {"to": who})],
                           catch=step("alerts", {"what": "upload failed"}), with_result=True)
    batch_id = flows.batch([step("import", {"row": i}) for i in range(1000)],
                           then=step("mail", {"msg": "imported"}),
                           catch=step("alerts", {"msg": "a row failed"}),
                           finally_=step("cleanup", {}), allow_failures=True)
    flows.add(batch_id, [step("import", {"row": 1000})])   # to a running batch
    flows.cancel(batch_id)        # pending jobs skipped, running ones finish
    flows.batch_info(batch_id)    # total, pending, processed, failed, state, ...

A chain runs its steps in order, each after the previous one succeeded; with
``with_result`` a step's payload gets the previous step's result as
``"previous"`` (merged into an object payload, else ``{"payload": P,
"previous": R}``; results encrypted at rest cannot be merged: use
``with_result`` without encryption). A step that fails for good (its tries
used up) stops the chain and enqueues ``catch``. A cleared step (``queueworker
queue clear``) stops it too (state ``cancelled``).

A batch runs its jobs at once. ``catch`` runs at the first failure (with
``failed_job`` in its hash); without ``allow_failures`` that failure cancels
the batch. When every job has run: ``then`` if none failed and it was not
cancelled, and ``finally`` always. Each callback is a job, enqueued once, in
the same script as the ack that completes the batch (flows_lua.py).
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis

from queueworker.common.errors import QueueworkerError
from queueworker.worker import keys
from queueworker.worker.connection import is_cluster
from queueworker.worker.flows_lua import HOOKS
from queueworker.worker.job import DEFAULT_MAX_PAYLOAD_BYTES, encode_payload, new_id, new_job_fields
from queueworker.worker.producer import make_options
from queueworker.worker.scripts import PRELUDE

_REFUSED = ("delay", "unique_key", "unique_for")

# ARGV: prefix, chain id, with_result, catch JSON, step JSON, ... -> the first job's id
CHAIN_START = PRELUDE + HOOKS + """
local cid, now = ARGV[2], now_s()
local ck = fkey('chain', cid)
if redis.call('EXISTS', ck) == 1 then return redis.error_reply('chain exists: ' .. cid) end
local n = #ARGV - 4
redis.call('HSET', ck, 'n', n, 'pos', 0, 'state', 'running', 'with_result', ARGV[3],
           'catch', ARGV[4], 'created_at', tostring(now))
for i = 5, #ARGV do redis.call('HSET', ck, 'step:' .. (i - 5), ARGV[i]) end
local first = cjson.decode(ARGV[5])
local id = flow_push(first, flow_id(now, 'c-' .. cid .. '-0', first.queue), now,
                     {'chain', cid, 'chain_pos', '0'}, nil)
redis.call('HSET', ck, 'current_job', id)
return id
"""

# ARGV: prefix, batch id, create (1|''), then, catch, finally, allow_failures, name,
# job JSON, ... -> jobs added | -1 (exists) | -2 (not running, or cancelled)
BATCH_ADD = PRELUDE + HOOKS + """
local bid, now = ARGV[2], now_s()
local bk = fkey('batch', bid)
if ARGV[3] == '1' then
  if redis.call('EXISTS', bk) == 1 then return -1 end
  redis.call('HSET', bk, 'state', 'running', 'total', 0, 'pending', 0, 'processed', 0,
             'failed', 0, 'cancelled', '', 'then', ARGV[4], 'catch', ARGV[5],
             'finally', ARGV[6], 'allow_failures', ARGV[7], 'name', ARGV[8],
             'created_at', tostring(now))
else
  local b = redis.call('HMGET', bk, 'state', 'cancelled')
  if b[1] ~= 'running' or (b[2] or '') ~= '' then return -2 end
end
local n = 0
for i = 9, #ARGV do
  local s = cjson.decode(ARGV[i])
  flow_push(s, s.id, now, {'batch', bid}, nil)
  redis.call('SADD', bk .. ':jobs', s.id)
  n = n + 1
end
redis.call('HINCRBY', bk, 'total', n)
if redis.call('HINCRBY', bk, 'pending', n) <= 0 then batch_finish(bid, bk, now) end
return n
"""

# ARGV: prefix, batch id -> pending jobs dropped | -1 (not running)
BATCH_CANCEL = PRELUDE + HOOKS + """
return batch_cancel(ARGV[2], now_s())
"""


class FlowError(QueueworkerError, ValueError):
    """A chain or batch that cannot be started (says what is wrong)."""


# On a Redis Cluster the hooks in SETTLE move a chain or batch on inside one script
# (flows_lua.py): every queue of it, callbacks too, must share its hash slot.
CLUSTER_FLOWS = ("on a Redis Cluster a chain's or batch's steps and callbacks must all be in "
                 "queues of one hash slot (a script cannot span slots): put them in one "
                 "queue and route them to their handlers with handler=..., or run them on "
                 "one Redis or behind Sentinel")


@dataclass(frozen=True)
class Step:
    """One job of a chain or batch (or a callback): queue, payload and enqueue options."""

    queue: str
    payload: Any = None
    options: Mapping[str, Any] = field(default_factory=dict)

    def prepared(self, max_payload_bytes: int, job_id: str | None = None) -> str:
        if not self.queue or any(c in self.queue for c in "{}"):
            raise FlowError(f"bad queue name {self.queue!r}")
        refused = sorted(set(self.options) & set(_REFUSED))
        if refused:
            raise FlowError(f"{', '.join(refused)}: not for a job of a chain or batch")
        try:
            opts = make_options(**self.options)
            fields = new_job_fields(self.queue, encode_payload(self.payload, max_payload_bytes),
                                    opts, time.time())
        except (TypeError, ValueError) as exc:
            raise FlowError(f"job for queue {self.queue!r}: {exc}") from None
        body: dict[str, Any] = {"queue": self.queue, "fields": fields}
        if job_id:
            body["id"] = job_id
        return json.dumps(body, separators=(",", ":"))


def step(queue: str, payload: Any = None, **options: Any) -> Step:
    return Step(queue, payload, options)


def _text(x: Any) -> str:
    return x.decode() if isinstance(x, bytes) else str(x)


def _int(h: Mapping[str, str], name: str) -> int:
    try:
        return int(h.get(name) or 0)
    except ValueError:
        return 0


def _flow_key(kind: str, flow_id: str, prefix: str) -> str:
    """As flows_lua's ``fkey``: in the slot of the queue the id names (ids of the old form,
    with no queue, keep their old key)."""
    queue = keys.queue_of_id(flow_id)
    return f"{prefix}:{kind}:{flow_id}" if queue is None else (
        f"{prefix}:{{{queue}}}:{kind}:{flow_id}")


def chain_key(chain_id: str, prefix: str = keys.DEFAULT_PREFIX) -> str:
    return _flow_key("chain", chain_id, prefix)


def batch_key(batch_id: str, prefix: str = keys.DEFAULT_PREFIX) -> str:
    return _flow_key("batch", batch_id, prefix)


def batches_key(prefix: str = keys.DEFAULT_PREFIX) -> str:
    return f"{prefix}:batches"


def chain_status(chain_id: str, h: Mapping[str, str]) -> dict[str, Any]:
    """A chain's hash as the CLI and the API show it."""
    steps = [json.loads(h[f"step:{i}"]) for i in range(_int(h, "n")) if f"step:{i}" in h]
    return {"id": chain_id, "state": h.get("state", ""), "steps": _int(h, "n"),
            "position": _int(h, "pos"), "queues": [s["queue"] for s in steps],
            "current_job": h.get("current_job") or None,
            "failed_job": h.get("failed_job") or None,
            "with_result": h.get("with_result") == "1", "has_catch": bool(h.get("catch")),
            "created_at": float(h.get("created_at") or 0),
            "finished_at": float(h["finished_at"]) if h.get("finished_at") else None}


def batch_status(batch_id: str, h: Mapping[str, str], failed_jobs: Sequence[str]
                 ) -> dict[str, Any]:
    """A batch's hash (and its failed jobs) as the CLI and the API show it."""
    total = _int(h, "total")
    done = _int(h, "processed") + _int(h, "failed")
    return {"id": batch_id, "name": h.get("name", ""), "state": h.get("state", ""),
            "total": total, "pending": _int(h, "pending"), "processed": _int(h, "processed"),
            "failed": _int(h, "failed"), "skipped": _int(h, "skipped"),
            "progress": round(100 * done / total) if total else 100,
            "cancelled": bool(h.get("cancelled")),
            "allow_failures": h.get("allow_failures") == "1",
            "failed_jobs": sorted(failed_jobs),
            "created_at": float(h.get("created_at") or 0),
            "finished_at": float(h["finished_at"]) if h.get("finished_at") else None}


class Flows:
    """Start and inspect chains and batches (redis-py, sync)."""

    def __init__(self, client: redis.Redis, prefix: str = keys.DEFAULT_PREFIX,
                 max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES) -> None:
        self.cluster = is_cluster(client)
        self.redis = client
        self.prefix = prefix
        self.max_payload_bytes = max_payload_bytes
        self._chain = client.register_script(CHAIN_START)
        self._add = client.register_script(BATCH_ADD)
        self._cancel = client.register_script(BATCH_CANCEL)

    def _cb(self, s: Step | None) -> str:
        return s.prepared(self.max_payload_bytes) if s is not None else ""

    def _place(self, what: str, home: str, steps: Sequence[Step | None]) -> list[str]:
        """The KEYS of a script call about a flow of queue ``home``; on a cluster a
        FlowError naming the queues when they are not all in ``home``'s slot."""
        if not self.cluster:
            return []
        queues = sorted({s.queue for s in steps if s is not None} | {home})
        slots = {q: keys.slot(q, self.prefix) for q in queues}
        if len(set(slots.values())) > 1:
            named = ", ".join(f"{q} (slot {n})" for q, n in slots.items())
            raise FlowError(f"{what} over queues {named}: {CLUSTER_FLOWS}")
        return keys.script_keys(home, True, self.prefix)

    def chain(self, steps: Sequence[Step], *, catch: Step | None = None,
              with_result: bool = False) -> str:
        """Start a chain; returns its id (``queueworker chain ID``)."""
        if not steps:
            raise FlowError("a chain needs at least one step")
        route = self._place("a chain", steps[0].queue, [*steps, catch])
        cid = secrets.token_hex(8) + keys.id_suffix(steps[0].queue)  # its hash: that slot
        self._chain(keys=route, args=[self.prefix, cid, "1" if with_result else "",
                                      self._cb(catch),
                                      *(s.prepared(self.max_payload_bytes) for s in steps)])
        return cid

    def batch(self, jobs: Sequence[Step], *, then: Step | None = None,
              catch: Step | None = None, finally_: Step | None = None,
              allow_failures: bool = False, name: str = "") -> str:
        """Start a batch; returns its id (``queueworker batch ID``)."""
        home = next((s.queue for s in [*jobs, then, catch, finally_] if s is not None), None)
        if home is None and self.cluster:
            raise FlowError("a batch on a Redis Cluster needs a job or a callback (its queue "
                            "places the batch)")
        self._place("a batch", home or "", [*jobs, then, catch, finally_])
        # its hash in that queue's slot (an empty batch with no callback: the old key)
        bid = secrets.token_hex(8) + (keys.id_suffix(home) if home else "")
        # The index first: a batch whose script failed is listed as unknown, never lost.
        self.redis.zadd(batches_key(self.prefix), {bid: time.time()})
        self._send(bid, jobs, ["1", self._cb(then), self._cb(catch), self._cb(finally_),
                               "1" if allow_failures else "", name])
        return bid

    def add(self, batch_id: str, jobs: Sequence[Step]) -> int:
        """Add jobs to a running batch (not a finished or cancelled one)."""
        return self._send(batch_id, jobs, ["", "", "", "", "", ""])

    def _send(self, bid: str, jobs: Sequence[Step], head: list[str]) -> int:
        route = self._place("a batch", keys.queue_of_id(bid) or "", jobs)
        prepared = [j.prepared(self.max_payload_bytes, new_id(queue=j.queue)) for j in jobs]
        n = int(self._add(keys=route, args=[self.prefix, bid, *head, *prepared]))
        if n == -1:
            raise FlowError(f"batch {bid!r} exists")
        if n == -2:
            raise FlowError(f"batch {bid!r} is finished, cancelled or unknown: nothing added")
        return n

    def cancel(self, batch_id: str) -> int:
        """Cancel a batch: its pending jobs leave their queues (returns how many), running
        ones finish; ``finally`` runs once all are done, ``then`` does not."""
        home = keys.queue_of_id(batch_id)
        if home is None and self.cluster:  # an id of the old form cannot be on a cluster
            raise FlowError(f"batch {batch_id!r} is not running (finished or unknown)")
        route = keys.script_keys(home or "", self.cluster, self.prefix)
        n = int(self._cancel(keys=route, args=[self.prefix, batch_id]))
        if n < 0:
            raise FlowError(f"batch {batch_id!r} is not running (finished or unknown)")
        return n

    def _hash(self, key: str) -> dict[str, str]:
        return {_text(k): _text(v) for k, v in self.redis.hgetall(key).items()}

    def chain_info(self, chain_id: str) -> dict[str, Any] | None:
        h = self._hash(chain_key(chain_id, self.prefix))
        return chain_status(chain_id, h) if h else None

    def batch_info(self, batch_id: str) -> dict[str, Any] | None:
        key = batch_key(batch_id, self.prefix)
        h = self._hash(key)
        if not h:
            return None
        return batch_status(batch_id, h, [_text(x) for x in self.redis.smembers(key + ":failed")])

    def batches(self, limit: int = 50) -> list[dict[str, Any]]:
        ids = self.redis.zrevrange(batches_key(self.prefix), 0, limit - 1)
        return [b for b in (self.batch_info(_text(i)) for i in ids) if b is not None]
