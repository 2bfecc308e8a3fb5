"""handlers.py: what the handlers share travels in kopf's memo, and a spec change wakes
the loop at once (through the per-QueueWorker memo) instead of at the next poll."""

from __future__ import annotations

import copy
import time
from typing import Any

import kopf

from queueworker.operator import handlers
from queueworker.operator.controller.context import OperatorConfig, Runtime

from support.operator_cluster import Cluster, wait_for
from support.operator_specs import fast_config, spec


def test_the_memo_carries_one_runtime_to_every_queueworker() -> None:
    config = OperatorConfig(status_refresh_seconds=1.5, refuse_privileged=True)
    memo = handlers.operator_memo(config)
    rt = handlers.runtime(memo)
    assert rt.config is config
    assert rt.connection is None  # the login handler finds the credentials
    # kopf gives each object a shallow copy of the memo: the same Runtime in it.
    per_object = copy.copy(memo)
    assert handlers.runtime(per_object) is rt
    per_object["loop"] = object()
    assert "loop" not in memo
    rt.running.add(("ns", "a"))
    probe: Any = handlers.probe  # kopf's decorator types it as a full activity handler
    assert probe(memo=memo) == 1


def test_a_bare_kopf_run_gets_the_default_config() -> None:
    memo = kopf.Memo()
    rt = handlers.runtime(memo)
    assert isinstance(rt, Runtime)
    assert rt.config == OperatorConfig()
    assert handlers.runtime(memo) is rt


def test_login_prefers_the_given_credentials() -> None:
    info = kopf.ConnectionInfo(server="https://127.0.0.1:1", insecure=True)
    memo = handlers.operator_memo(connection=info)
    login: Any = handlers.login  # as above
    assert login(memo=memo) is info


async def test_a_spec_change_acts_at_once_not_at_the_next_poll(redis_url: str) -> None:
    poll = 60.0  # far longer than the test waits
    async with Cluster(config=fast_config()) as c:
        await c.start_operator()
        await c.create_qw("slow", spec(redis_url, poll=poll, minReplicas=1, maxReplicas=5))
        await wait_for(lambda: c.replicas("slow") == 1, 10, "1 replica")
        started = time.monotonic()
        await c.patch_qw("slow", {"spec": {"scaling": {"minReplicas": 3}}})
        await wait_for(lambda: c.replicas("slow") == 3, 10, "3 replicas after the wake")
        assert time.monotonic() - started < poll / 2
