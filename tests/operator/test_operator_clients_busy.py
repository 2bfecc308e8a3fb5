"""CLIENT LIST through the operator: a connection blocked waiting for work, made from a
pod's IP, makes that pod known idle (observe/busy/clients.py, mapped by `status.podIP`
from the pod index); the scale-down removes the known idle pods and keeps the others.

The kubelet gives every pod its own loopback IP (support/kube_kubelet.py `pod_ip`);
a "worker" here is a real Redis connection whose socket is bound to that IP, so the
real redis-server's CLIENT LIST shows `addr=<pod IP>:<port>`. Idle Laravel workers sit
in `BLPOP queues:<q>:notify` (`flags=b`); a busy one's connection is not blocked, so
its pod is *unknown*, and the in-flight count (`queues:<q>:reserved`) keeps two pods.
Without the IP mapping every pod is unknown and the first names go first: the test
names the two non-blocked pods so that they are those.
"""

from __future__ import annotations

import socket
import time
from typing import Any

import pytest
import redis

from support.operator_cluster import Cluster, wait_for
from support.operator_specs import fast_config, spec

# Multi-process or minutes-long: `make test` runs it, `make test-fast` does not.
pytestmark = pytest.mark.slow

POLL = 0.5


def _command(*args: str) -> bytes:
    out = [f"*{len(args)}\r\n".encode()]
    for a in args:
        out.append(f"${len(a.encode())}\r\n{a}\r\n".encode())
    return b"".join(out)


def _connect_from(ip: str, port: int, *args: str) -> socket.socket:
    """A connection to Redis whose source address is `ip`, sending one command."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((ip, 0))
    sock.connect(("127.0.0.1", port))
    sock.sendall(_command(*args))
    return sock


def _busy_pods(c: Cluster, name: str) -> dict[str, Any]:
    return dict((c.qw(name).get("status") or {}).get("busyPods") or {})


async def test_blocked_connection_from_a_pod_ip_makes_it_known_idle(redis_url: str) -> None:
    r = redis.Redis.from_url(redis_url)
    port = int(r.connection_pool.connection_kwargs["port"])
    body = spec(redis_url, poll=POLL, minReplicas=0, maxReplicas=6, targetBacklogPerReplica=1,
                idleSecondsBeforeZero=600, scaleDown={"stabilizationSeconds": 1})
    body["queues"] = [{"name": "jobs", "layout": "laravel"}]
    socks: list[socket.socket] = []
    async with Cluster(config=fast_config()) as c:
        await c.start_operator()
        await c.create_qw("lv", body)
        r.rpush("queues:jobs", *[f'{{"id":"j{i}"}}' for i in range(6)])
        await wait_for(lambda: c.replicas("lv") == 6, 30, "6 replicas")
        pods = await wait_for(lambda: len(c.pods("lv")) == 6 and all(
            (p.get("status") or {}).get("podIP") for p in c.pods("lv")) and c.pods("lv"),
            30, "6 pods with their IPs")
        ips = {p["metadata"]["name"]: p["status"]["podIP"] for p in pods}
        assert len(set(ips.values())) == 6, ips
        names = sorted(ips)
        busy = set(names[:2])  # the victims by name, were the pods all unknown
        # redis-server answers only 127.0.0.1 in protected mode (no password): a pod's
        # address is another host to it. Restored below; the server is the session's.
        r.config_set("protected-mode", "no")
        try:
            for pod in names:
                if pod in busy:  # running a job: its connection does not block
                    socks.append(_connect_from(ips[pod], port, "PING"))
                else:
                    socks.append(_connect_from(ips[pod], port, "BLPOP", "queues:jobs:notify",
                                               "0"))
            await wait_for(lambda: _busy_pods(c, "lv").get("idle") == 4
                           and _busy_pods(c, "lv").get("unknown") == 2, 30,
                           "4 pods known idle from CLIENT LIST, 2 unknown")
            # The queue drains; two jobs are in flight (the busy pods').
            expires = time.time() + 90
            r.zadd("queues:jobs:reserved", {'{"id":"j0"}': expires, '{"id":"j1"}': expires})
            r.delete("queues:jobs")
            await wait_for(lambda: c.replicas("lv") == 2, 30, "2 replicas (the jobs in flight)")
            await wait_for(lambda: {p["metadata"]["name"] for p in c.pods("lv")} == busy, 30,
                           "only the pods that were not blocked are left")
        finally:
            for sock in socks:
                sock.close()
            r.config_set("protected-mode", "yes")
    r.close()
