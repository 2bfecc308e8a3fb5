"""Conditions the Kubernetes way.

A condition's ``lastTransitionTime`` moves only when its ``status`` changes;
reason, message and ``observedGeneration`` may change without a transition.
Every type in ``api.CONDITION_TYPES`` is reported from the first visit on,
``Unknown`` until known. The whole list is written with a merge patch (a list
is replaced whole): one operator replica writes a QueueWorker's status at a
time (peering), so there is no concurrent writer to lose.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping
from typing import Any

from queueworker.operator import api


def now_iso(now: float | None = None) -> str:
    when = (datetime.datetime.now(datetime.UTC) if now is None
            else datetime.datetime.fromtimestamp(now, datetime.UTC))
    return when.replace(microsecond=0).isoformat().replace("+00:00", "Z")


def set_condition(
    conditions: Iterable[Mapping[str, Any]],
    type_: str,
    status: str,
    reason: str,
    message: str = "",
    *,
    generation: int | None = None,
    now: str | None = None,
) -> list[dict[str, Any]]:
    """A new list with one condition set; lastTransitionTime kept unless status changed."""
    out: list[dict[str, Any]] = []
    found = False
    for cond in conditions:
        cond = dict(cond)
        if cond.get("type") == type_:
            found = True
            if cond.get("status") != status or not cond.get("lastTransitionTime"):
                cond["lastTransitionTime"] = now or now_iso()
            cond.update(status=status, reason=reason, message=message[:1000])
            if generation is not None:
                cond["observedGeneration"] = generation
        out.append(cond)
    if not found:
        new: dict[str, Any] = {"type": type_, "status": status, "reason": reason,
                               "message": message[:1000],
                               "lastTransitionTime": now or now_iso()}
        if generation is not None:
            new["observedGeneration"] = generation
        out.append(new)
    return out


def with_all_types(
    conditions: Iterable[Mapping[str, Any]], *, generation: int | None = None,
    now: str | None = None,
) -> list[dict[str, Any]]:
    """Every known type present (Unknown where not yet set), in a stable order."""
    by_type = {str(c.get("type")): dict(c) for c in conditions}
    out: list[dict[str, Any]] = []
    for type_ in api.CONDITION_TYPES:
        if type_ in by_type:
            out.append(by_type.pop(type_))
        else:
            cond: dict[str, Any] = {"type": type_, "status": "Unknown", "reason": "Pending",
                                    "message": "", "lastTransitionTime": now or now_iso()}
            if generation is not None:
                cond["observedGeneration"] = generation
            out.append(cond)
    out.extend(by_type.values())
    return out


def get_condition(conditions: Iterable[Mapping[str, Any]], type_: str) -> dict[str, Any] | None:
    for cond in conditions:
        if cond.get("type") == type_:
            return dict(cond)
    return None


def comparable(conditions: Iterable[Mapping[str, Any]]) -> list[tuple[Any, ...]]:
    """What of the conditions is worth a status write when it changes."""
    return [(c.get("type"), c.get("status"), c.get("reason"), c.get("message"),
             c.get("observedGeneration")) for c in conditions]
