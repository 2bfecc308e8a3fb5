"""Chains and batches (flows.py, flows_lua.py) with an in-process worker on a real redis-server."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis

from queueworker.worker import admin, cli_batch, cli_chain, keys
from queueworker.worker.flows import FlowError, Flows, step
from queueworker.worker.job import Job
from queueworker.worker.runtime import Worker

from support.worker_inproc import fast_settings, run_until, table


class Recorder:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str, Any]] = []

    async def __call__(self, payload: Any, job: Job) -> Any:
        self.seen.append((job.queue, job.id, payload))
        if isinstance(payload, dict) and payload.get("fail"):
            raise RuntimeError("asked to fail")
        return {"from": job.id}

    def payloads(self, queue: str) -> list[Any]:
        return [p for q, _, p in self.seen if q == queue]


def _flows(url: str) -> Flows:
    return Flows(redis.Redis.from_url(url, decode_responses=True))


async def _run(url: str, rec: Recorder, queues: list[str], until: Any) -> None:
    worker = Worker(fast_settings(url, queues=queues, concurrency=1), table(rec))

    async def cond() -> bool:
        return bool(until())

    assert await run_until(worker, cond) == 0


async def test_chain_runs_in_order_passing_results(redis_url: str) -> None:
    f, rec = _flows(redis_url), Recorder()
    cid = f.chain([step("q", {"n": 1}), step("q", {"n": 2}), step("q", "text"),
                   step("q", {})], with_result=True)
    await _run(redis_url, rec, ["q"], lambda: f.chain_info(cid)["state"] == "done")  # type: ignore[index]
    ids = [i for _, i, _ in rec.seen]
    assert rec.payloads("q") == [
        {"n": 1}, {"previous": {"from": ids[0]}, "n": 2},
        {"payload": "text", "previous": {"from": ids[1]}}, {"previous": {"from": ids[2]}}]
    info = f.chain_info(cid)
    assert info is not None
    assert (info["position"], info["steps"], info["failed_job"]) == (4, 4, None)


async def test_a_failed_step_stops_the_chain_and_runs_catch(redis_url: str) -> None:
    f, rec = _flows(redis_url), Recorder()
    cid = f.chain([step("q", {"n": 1}), step("q", {"fail": True}, max_tries=1),
                   step("q", {"n": 3})], catch=step("alerts", {"chain": "upload"}))
    await _run(redis_url, rec, ["q", "alerts"], lambda: rec.payloads("alerts"))
    assert rec.payloads("q") == [{"n": 1}, {"fail": True}]
    assert rec.payloads("alerts") == [{"chain": "upload"}]
    info = f.chain_info(cid)
    assert info is not None
    assert info["state"] == "failed"
    assert info["failed_job"] == rec.seen[1][1]
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    assert r.hget(keys.job(rec.seen[2][1]), "failed_job") == rec.seen[1][1]


async def test_batch_with_allowed_failures_counts_and_callbacks(redis_url: str) -> None:
    f, rec = _flows(redis_url), Recorder()
    jobs = [step("b", {"i": i}) for i in range(5)] + [step("b", {"fail": True}, max_tries=1)]
    bid = f.batch(jobs, then=step("cb", "then"), catch=step("cb", "catch"),
                  finally_=step("cb", "finally"), allow_failures=True, name="import")
    await _run(redis_url, rec, ["b", "cb"], lambda: "finally" in rec.payloads("cb"))
    await asyncio.sleep(0.2)
    assert sorted(rec.payloads("cb")) == ["catch", "finally"]  # no then: a job failed
    info = f.batch_info(bid)
    assert info is not None
    assert {k: info[k] for k in ("state", "total", "pending", "processed", "failed",
                                 "progress", "cancelled", "name")} == {
        "state": "finished", "total": 6, "pending": 0, "processed": 5, "failed": 1,
        "progress": 100, "cancelled": False, "name": "import"}
    assert info["failed_jobs"] == [i for q, i, p in rec.seen if p == {"fail": True}]
    assert [b["id"] for b in f.batches()] == [bid]


async def test_batch_then_finally_and_adding_to_a_running_batch(redis_url: str) -> None:
    f, rec = _flows(redis_url), Recorder()
    bid = f.batch([step("b", {"i": 0})], then=step("cb", "then"), finally_=step("cb", "fin"))
    assert f.add(bid, [step("b", {"i": 1}), step("b", {"i": 2})]) == 2
    assert f.batch_info(bid)["total"] == 3  # type: ignore[index]
    await _run(redis_url, rec, ["b", "cb"], lambda: len(rec.payloads("cb")) == 2)
    assert sorted(rec.payloads("cb")) == ["fin", "then"]
    assert len(rec.payloads("b")) == 3
    with pytest.raises(FlowError, match="finished, cancelled or unknown"):
        f.add(bid, [step("b", {})])


def test_cancel_skips_pending_jobs_and_runs_finally_only(redis_url: str) -> None:
    f = _flows(redis_url)
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    bid = f.batch([step("b", {"i": i}) for i in range(4)], then=step("cb", "then"),
                  finally_=step("cb", "fin"))
    assert r.llen(keys.waiting("b")) == 4
    assert f.cancel(bid) == 4
    assert r.llen(keys.waiting("b")) == 0
    info = f.batch_info(bid)
    assert info is not None
    assert (info["state"], info["cancelled"], info["skipped"], info["pending"]) == (
        "finished", True, 4, 0)
    (cb,) = r.lrange(keys.waiting("cb"), 0, -1)
    assert r.hget(keys.job(cb), "payload") == '"fin"'
    with pytest.raises(FlowError, match="not running"):
        f.cancel(bid)


def test_empty_batch_finishes_at_once_and_bad_steps_are_refused(redis_url: str) -> None:
    f = _flows(redis_url)
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    bid = f.batch([], then=step("cb", "then"))
    assert f.batch_info(bid)["state"] == "finished"  # type: ignore[index]
    assert r.llen(keys.waiting("cb")) == 1
    with pytest.raises(FlowError, match="delay"):
        f.chain([step("q", {}, delay=5)])
    with pytest.raises(FlowError, match="at least one step"):
        f.chain([])
    with pytest.raises(FlowError, match="not JSON"):
        f.batch([step("q", b"bytes")])
    assert f.chain_info("nope") is None
    assert f.batch_info("nope") is None


def test_queue_clear_counts_batch_jobs_skipped_and_stops_a_chain(redis_url: str) -> None:
    f = _flows(redis_url)
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    bid = f.batch([step("b", {"i": i}) for i in range(3)], finally_=step("cb", "fin"))
    cid = f.chain([step("b", {"c": 1}), step("b", {"c": 2})])
    assert admin.clear_queue(r, "b") == 4
    info = f.batch_info(bid)
    assert info is not None
    assert (info["state"], info["skipped"], info["pending"]) == ("finished", 3, 0)
    assert r.llen(keys.waiting("cb")) == 1
    assert f.chain_info(cid)["state"] == "cancelled"  # type: ignore[index]


def test_chain_and_batch_cli(redis_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    f = _flows(redis_url)
    url = ["--redis-url", redis_url]
    bid = f.batch([step("b", {"i": 1})], name="nightly")
    cid = f.chain([step("b", {"c": 1})])
    assert cli_chain.main([cid, *url]) == 0
    assert '"state": "running"' in capsys.readouterr().out
    assert cli_batch.main(["list", *url]) == 0
    assert f"{bid}  nightly" in capsys.readouterr().out
    assert cli_batch.main([bid, *url]) == 0
    assert '"total": 1' in capsys.readouterr().out
    assert cli_batch.main(["cancel", bid, *url]) == 0
    assert "1 pending job(s) skipped" in capsys.readouterr().out
    assert cli_batch.main(["cancel", bid, *url]) == 1
    assert "not running" in capsys.readouterr().err
    assert cli_batch.main(["nope", *url]) == 1
    assert cli_chain.main(["nope", *url]) == 1
