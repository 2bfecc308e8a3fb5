"""Replicas drop once the operator's own pod index shows the deletion-cost marks (act.py).

No cluster: the pod index is a list of entries (cluster/index.py) that a test
changes as a watch would; the harness test is test_harness_deletion_cost.py.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import pytest

from queueworker.operator.controller import act


def entry(name: str, cost: str | None = None) -> dict[str, Any]:
    return {"name": name, "cost": cost}


def test_marks_are_visible_when_every_written_one_shows() -> None:
    marks: act.Marks = {"a": act.IDLE_COST, "b": None}
    assert not act.marks_visible(marks, [entry("a"), entry("b", act.IDLE_COST)])
    assert not act.marks_visible(marks, [entry("a", act.IDLE_COST), entry("b", act.IDLE_COST)])
    assert act.marks_visible(marks, [entry("a", act.IDLE_COST), entry("b"), entry("c")])
    # A pod gone from the index meanwhile has nothing left to show.
    assert act.marks_visible(marks, [entry("a", act.IDLE_COST)])
    assert act.marks_visible({}, [])


async def test_the_wait_ends_a_margin_after_the_index_shows_the_marks() -> None:
    index = [entry("a"), entry("b")]

    async def watch_catches_up() -> None:
        await asyncio.sleep(0.3)
        index[0] = entry("a", act.IDLE_COST)

    started = time.monotonic()
    task = asyncio.create_task(watch_catches_up())
    seen = await act.await_marks({"a": act.IDLE_COST}, lambda: list(index), margin=0.2,
                                 limit=5.0, qw="jobs")
    waited = time.monotonic() - started
    await task
    assert seen
    assert 0.5 <= waited < 1.5, waited


async def test_the_wait_is_bounded_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger=act.__name__)
    started = time.monotonic()
    seen = await act.await_marks({"a": act.IDLE_COST}, lambda: [entry("a")], margin=0.2,
                                 limit=0.3, qw="jobs")
    waited = time.monotonic() - started
    assert not seen
    assert 0.3 <= waited < 1.0, waited  # no margin added once the limit is reached
    assert any("pod.deletion_cost_unseen" in r.getMessage() for r in caplog.records)
