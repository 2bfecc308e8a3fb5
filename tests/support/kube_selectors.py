"""Label selectors on list and watch, as a real API server applies them (kmock 0.8 ignores them).

A watch with ``?labelSelector=`` carries only the objects that match; an object
that stops matching leaves the watch as a DELETED event and one that starts
matching enters it as ADDED, as the API server's watch cache does. Sharded
operators (queueworker.operator.shard) rely on exactly that.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from queueworker.operator import shard

# (resource, labelSelector or None) of a list or watch request, as the emulator keeps them.
Asked = set[tuple[Any, str | None]]


def selector_of(request: Any, asked: Asked | None = None) -> tuple[shard.Requirement, ...] | None:
    text = (getattr(request, "params", None) or {}).get("labelSelector")
    if asked is not None:
        asked.add((getattr(request, "resource", None), text or None))
    return shard.parse(text) if text else None


def labels_of(obj: Any) -> dict[str, str]:
    return dict(((obj or {}).get("metadata") or {}).get("labels") or {})


def listed(payload: Any, request: Any, asked: Asked | None = None) -> Any:
    """A list response with only the items the request's selector picks."""
    wanted = selector_of(request, asked)
    if wanted is None or not isinstance(payload, dict):
        return payload
    return {**payload, "items": [o for o in payload.get("items") or []
                                 if shard.matches(wanted, labels_of(o))]}


async def watched(stream: AsyncIterator[Any], request: Any, asked: Asked | None = None
                  ) -> AsyncIterator[Any]:
    """A watch stream with only the events of objects the request's selector picks."""
    wanted = selector_of(request, asked)
    if wanted is None:
        async for item in stream:
            yield item
        return
    inside: set[tuple[str | None, str | None]] = set()
    async for item in stream:
        if not isinstance(item, dict) or "object" not in item:
            yield item
            continue
        meta = item["object"].get("metadata") or {}
        key = (meta.get("namespace"), meta.get("name"))
        if shard.matches(wanted, labels_of(item["object"])):
            kind = "ADDED" if key not in inside and item.get("type") == "MODIFIED" else None
            if item.get("type") == "DELETED":
                inside.discard(key)
            else:
                inside.add(key)
            yield {**item, "type": kind} if kind else item
        elif key in inside:  # it stopped matching: it leaves this watch
            inside.discard(key)
            yield {**item, "type": "DELETED"}
