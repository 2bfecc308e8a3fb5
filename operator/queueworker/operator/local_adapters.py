"""Bridge to the layout readers, written by another part of the project.

Local mode uses `queueworker.operator.layouts.read_depths` when it is
importable. Until it is, a minimal native-layout reader stands in so the rest
of local mode can be exercised; the fallback is announced in the log, once.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Sequence
from typing import Any, cast

import redis

from queueworker.operator import api
from queueworker.operator.engine.types import QueueDepth
from queueworker.worker import keys

log = logging.getLogger("queueworker.local")

ReadFn = Callable[[redis.Redis, Sequence[api.QueueSpec], float], Sequence[QueueDepth]]

_warned: set[str] = set()


def _find(module: str, name: str) -> Any | None:
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name and module.startswith(exc.name):
            return None
        raise
    return getattr(mod, name, None)


def _warn_once(what: str) -> None:
    if what not in _warned:
        _warned.add(what)
        log.warning("fallback in use: %s not available yet", what)


def read_depths(client: redis.Redis, queues: Sequence[api.QueueSpec],
                now: float) -> Sequence[QueueDepth]:
    real = _find("queueworker.operator.layouts", "read_depths")
    if real is not None:
        return cast(ReadFn, real)(client, queues, now)
    _warn_once("queueworker.operator.layouts.read_depths")
    return _fallback_read_native(client, queues, now)


# ------------------------------------------------------------------ fallbacks


def _fallback_read_native(client: redis.Redis, queues: Sequence[api.QueueSpec],
                          now: float) -> list[QueueDepth]:
    pipe = client.pipeline(transaction=False)
    for q in queues:
        pipe.llen(keys.waiting(q.name))
        pipe.zcard(keys.inflight(q.name))
        pipe.zcard(keys.delayed(q.name))
        pipe.lindex(keys.waiting(q.name), -1)
    res = pipe.execute()
    out: list[QueueDepth] = []
    for i, q in enumerate(queues):
        waiting, inflight, delayed, oldest = res[4 * i: 4 * i + 4]
        at = keys.enqueued_at_from_id(oldest) if oldest else None
        out.append(QueueDepth(name=q.name, layout=q.layout.value, waiting=int(waiting),
                              in_flight=int(inflight), delayed=int(delayed),
                              oldest_age_seconds=max(0.0, now - at) if at else None))
    return out
