"""The worker's housekeeping round trips: BEAT every tick, REAP every ``reap_interval``.

BEAT writes the heartbeat and renews the lease of every job this worker has
taken (running or buffered); REAP puts expired leases and due delayed jobs
back to waiting, trims the failed store and forgets stale workers. REAP is
guarded by a lock in Redis, so one worker of the fleet reaps per interval.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from typing import Any

from queueworker.worker.broker import Broker
from queueworker.worker.config import Settings
from queueworker.worker.job import Job
from queueworker.worker.log import event
from queueworker.worker.metrics import WorkerMetrics


class Housekeeper:
    def __init__(self, broker: Broker, settings: Settings, worker_id: str,
                 metrics: WorkerMetrics) -> None:
        self.broker = broker
        self.s = settings
        self.worker_id = worker_id
        self.metrics = metrics
        self._next_reap = 0.0

    async def beat(self, heartbeat: dict[str, Any], taken: Sequence[Job]) -> None:
        """Heartbeat and lease renewal in one round trip; logs the leases found gone."""
        s = self.s
        gone, depths = await self.broker.beat_and_read(
            self.worker_id, json.dumps(heartbeat), max(1, int(3 * s.heartbeat_interval + 1)),
            s.lease, taken, s.queues)
        for q, levels in depths.items():
            for level, n in levels.items():
                self.metrics.waiting.labels(q, str(level)).set(n)
        if gone:
            event("lease.lost", logging.WARNING, jobs=",".join(gone[:10]), count=len(gone))

    async def reap_if_due(self) -> None:
        now = time.monotonic()
        if now < self._next_reap:
            return
        s = self.s
        self._next_reap = now + s.reap_interval
        res = await self.broker.reap(
            s.queues, self.worker_id, s.reap_interval, max_lost=s.max_lost,
            failed_max_age=s.failed_max_age, failed_max_count=s.failed_max_count,
            worker_stale=3 * s.heartbeat_interval + 1)
        if res is not None and any(res):
            recovered, promoted, failed, trimmed = res
            self.metrics.leases_recovered.inc(recovered)
            level = logging.WARNING if recovered or failed else logging.DEBUG
            event("reaper", level, recovered=recovered, promoted=promoted,
                  lease_failed=failed, trimmed=trimmed)
