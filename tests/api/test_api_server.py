"""The real server process (uvicorn): a waiting client that goes away frees its wait at once,
and SIGTERM stops the server cleanly."""

from __future__ import annotations

import httpx
import pytest

from support.api_client import bearer, make_token
from support.api_proc import ApiServer
from support.worker_proc import wait_until

pytestmark = pytest.mark.slow


def _open_streams(c: httpx.Client) -> float:
    for line in c.get("/metrics").text.splitlines():
        if line.startswith("queueworker_api_open_streams "):
            return float(line.split()[1])
    raise AssertionError("no queueworker_api_open_streams in /metrics")


def test_a_client_that_leaves_a_wait_frees_it(redis_url: str) -> None:
    server = ApiServer(redis_url)
    try:
        with httpx.Client(base_url=server.url, headers=bearer(make_token()), timeout=10) as c:
            job_id = c.post("/v1/queues/nobody/jobs", json={"payload": 1}).json()["id"]
            with pytest.raises(httpx.ReadTimeout):
                c.get(f"/v1/jobs/{job_id}/wait", params={"timeout": 120}, timeout=0.5)
            # Without a worker the job never finishes: only the disconnect ends the wait.
            wait_until(lambda: _open_streams(c) == 0, timeout=20,
                       what="the abandoned wait to end")
            assert 'status="499"' in c.get("/metrics").text
    finally:
        out = server.stop()
    assert server.proc.returncode == 0, out
    assert "Traceback" not in out, out
