"""Quiet first with a real Sidekiq 6.4 (Debian ruby-sidekiq): a job taken a moment before a
scale-down is not cut.

Sidekiq writes `busy` at its beat (every 5 s in 6.x), so right after a beat a
process that has just taken a job still reads idle, and the engine picks it
as the victim. The operator quiets it first (engine/quiet.py, act.quiet_first)
and lowers the replicas only once a beat says it is quiet and idle. The test
plays the kubelet: when the emulated ReplicaSet deletes the pod, its Sidekiq
gets SIGTERM, with `-t 1`: a job still running then is pushed back (cut).
Without the quiet step the job is cut (checked by disabling it).
"""

from __future__ import annotations

import asyncio
import json
import secrets
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import redis

from queueworker.observe import busy
from queueworker.observe.busy import PodRef
from queueworker.operator.api import QueueSpec

from support.engine_layouts import ensure_sidekiq
from support.operator_cluster import Cluster, wait_for
from support.operator_specs import fast_config, spec

# Multi-process: `make test` runs it, `make test-fast` does not.
pytestmark = pytest.mark.slow

POLL = 0.5
JOB = Path(__file__).resolve().parents[1] / "local" / "sidekiq_sleep.rb"


def _beat(client: redis.Redis, pod: str) -> float | None:
    """Pod's Sidekiq beat time, as the operator's adapter reads it."""
    q = QueueSpec.model_validate({"name": "default", "layout": "sidekiq"})
    beat = busy.read_sync(client, [q], time.time(), [PodRef(pod)])[1].beats.get(pod)
    return beat.beat_at if beat is not None else None


def _sidekiq(redis_url: str, pod: str, log: Path) -> subprocess.Popen[bytes]:
    """A real Sidekiq whose `info.hostname` is $DYNO: the pod name."""
    sidekiq = shutil.which("sidekiq")
    assert sidekiq is not None
    with log.open("wb") as out:
        return subprocess.Popen(
            [sidekiq, "-r", str(JOB), "-c", "1", "-t", "1", "-q", "default"],
            env={"PATH": "/usr/bin:/bin", "REDIS_URL": redis_url, "DYNO": pod},
            stdout=out, stderr=subprocess.STDOUT)


def _push(client: redis.Redis, *args: object) -> None:
    """One job as Sidekiq::Client.push writes it (tests/peers/ruby/sidekiq_push.rb does the
    same through Ruby, a second or more to start: too slow to land between two beats)."""
    now = time.time()
    job = {"class": "Sleep", "queue": "default", "args": list(args), "retry": False,
           "jid": secrets.token_hex(12), "created_at": now, "enqueued_at": now}
    client.sadd("queues", "default")
    client.lpush("queue:default", json.dumps(job))


def _gone(c: Cluster, pod: str) -> bool:
    return not any(p["metadata"]["name"] == pod and not p["metadata"].get("deletionTimestamp")
                   for p in c.pods("skq"))


async def test_a_job_taken_just_before_a_scale_down_is_not_cut(redis_url: str,
                                                               tmp_path: Path) -> None:
    ensure_sidekiq()
    r = redis.Redis.from_url(redis_url)
    marks = tmp_path / "marks"
    marks.mkdir()
    body = spec(redis_url, poll=POLL, minReplicas=2, maxReplicas=2)
    body["queues"] = [{"name": "default", "layout": "sidekiq"}]
    log = tmp_path / "sidekiq.log"
    async with Cluster(config=fast_config()) as c:
        await c.start_operator()
        await c.create_qw("skq", body)
        pods = await wait_for(lambda: len(c.pods("skq")) == 2 and c.pods("skq"), 15, "2 pods")
        a, b = sorted(p["metadata"]["name"] for p in pods)
        # Pod a runs a real Sidekiq; pod b runs nothing the registry knows, so the
        # engine's victim is a (known idle pods go first).
        proc = _sidekiq(redis_url, a, log)
        try:
            first = await wait_for(lambda: _beat(r, a), 30, "pod a's Sidekiq beating")
            # Just after a beat, the next one (5 s away) is the first that can say busy:
            # the job is taken at once (a waits in BRPOP) and the scale-down decided now.
            await wait_for(lambda: (_beat(r, a) or 0) > first, 15, "a fresh beat")
            _push(r, str(marks), "job", 5)
            await c.patch_qw("skq", {"spec": {"scaling": {"minReplicas": 1,
                                                          "maxReplicas": 1}}})
            await wait_for(lambda: _gone(c, a), 40, "pod a removed")
            proc.send_signal(signal.SIGTERM)  # the kubelet's part
            await asyncio.to_thread(proc.wait, 30)
        finally:
            proc.kill()
        output = log.read_text(encoding="utf-8", errors="replace")
        assert "Pushed" not in output, "Sidekiq pushed the running job back: it was cut"
        assert (marks / "job.done").exists(), output
        assert len((marks / "job.start").read_text().splitlines()) == 1
        assert [p["metadata"]["name"] for p in c.pods("skq")
                if not p["metadata"].get("deletionTimestamp")] == [b]
        assert c.replicas("skq") == 1
