"""A real Sentinel setup on loopback: 1 master, 2 replicas, 3 Sentinels (Debian's
redis-server in ``--sentinel`` mode, which is what Debian's redis-sentinel runs).

Failover is made fast for tests: ``down-after-milliseconds`` 1000 and
``failover-timeout`` 5000, so a killed master is replaced in about 2-4 s.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import redis

from support.redis_server import RedisServer

MASTER_NAME = "qwmaster"
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 5000


def distinct_ports(n: int) -> list[int]:
    """``n`` free loopback ports, all different (each held until all are chosen)."""
    held = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            held.append(s)
        return [s.getsockname()[1] for s in held]
    finally:
        for s in held:
            s.close()


class SentinelSetup:
    """Start with ``start()``, stop with ``cleanup()``. ``password``: the data nodes'
    requirepass; ``sentinel_password``: the Sentinels' own requirepass."""

    def __init__(self, password: str | None = None,
                 sentinel_password: str | None = None) -> None:
        self.password = password
        self.sentinel_password = sentinel_password
        auth = [] if password is None else ["--requirepass", password,
                                            "--masterauth", password]
        ports = distinct_ports(6)
        self.master = RedisServer(*auth, port=ports[0])
        self.replicas = [RedisServer(*auth, port=p) for p in ports[1:3]]
        self.dir = Path(tempfile.mkdtemp(prefix="qw-sentinel-"))
        self.sentinel_ports = ports[3:]
        self.sentinels: list[subprocess.Popen[bytes]] = []

    @property
    def nodes(self) -> list[RedisServer]:
        return [self.master, *self.replicas]

    @property
    def addresses(self) -> list[str]:
        return [f"127.0.0.1:{p}" for p in self.sentinel_ports]

    def url(self, db: int = 0) -> str:
        """The redis+sentinel:// URL of this setup, credentials included."""
        auth = f":{self.password}@" if self.password else ""
        query = f"?sentinel_password={self.sentinel_password}" if self.sentinel_password else ""
        return f"redis+sentinel://{auth}{','.join(self.addresses)}/{MASTER_NAME}/{db}{query}"

    def start(self) -> SentinelSetup:
        self.master.start()
        for r in self.replicas:
            r.extra += ["--replicaof", "127.0.0.1", str(self.master.port)]
            r.start()
        binary = shutil.which("redis-server")
        assert binary is not None
        for port in self.sentinel_ports:
            conf = self.dir / f"sentinel-{port}.conf"
            lines = [
                f"port {port}", "bind 127.0.0.1", f"dir {self.dir}",
                f"sentinel monitor {MASTER_NAME} 127.0.0.1 {self.master.port} 2",
                f"sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}",
                f"sentinel failover-timeout {MASTER_NAME} {FAILOVER_TIMEOUT_MS}",
                f"sentinel parallel-syncs {MASTER_NAME} 2",
            ]
            if self.password:
                lines.append(f"sentinel auth-pass {MASTER_NAME} {self.password}")
            if self.sentinel_password:
                lines += [f"requirepass {self.sentinel_password}",
                          f"sentinel sentinel-pass {self.sentinel_password}"]
            conf.write_text("\n".join(lines) + "\n")
            self.sentinels.append(subprocess.Popen(
                [binary, str(conf), "--sentinel"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        self.wait_ready()
        return self

    def sentinel_client(self, port: int) -> redis.Redis:
        return redis.Redis(port=port, password=self.sentinel_password, socket_timeout=1,
                           decode_responses=True)

    def wait_ready(self, seconds: float = 30.0) -> None:
        """Until every Sentinel knows the master, both replicas (in sync) and the others."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                if all(self._sentinel_ready(p) for p in self.sentinel_ports):
                    return
            except (redis.ConnectionError, redis.ResponseError):
                pass
            time.sleep(0.1)
        raise RuntimeError("the Sentinels did not see the master, 2 replicas and each other")

    def _sentinel_ready(self, port: int) -> bool:
        s = self.sentinel_client(port)
        try:
            replicas = s.sentinel_slaves(MASTER_NAME)
            others = s.sentinel_sentinels(MASTER_NAME)
        finally:
            s.close()
        ok = [r for r in replicas if not r.get("is_sdown")
              and r.get("master-link-status") == "ok"]
        return len(ok) == 2 and len(others) == 2

    def master_port(self) -> int:
        """The master's port as the first answering Sentinel says."""
        for port in self.sentinel_ports:
            s = self.sentinel_client(port)
            try:
                addr = s.sentinel_get_master_addr_by_name(MASTER_NAME)
                if addr:
                    return int(addr[1])
            except (redis.ConnectionError, redis.ResponseError):
                continue
            finally:
                s.close()
        raise RuntimeError("no Sentinel answered")

    def kill_master(self) -> int:
        """SIGKILL the current master (no shutdown save, no goodbye); returns its port."""
        port = self.master_port()
        node = next(n for n in self.nodes if n.port == port)
        assert node.proc is not None
        node.proc.send_signal(signal.SIGKILL)
        node.proc.wait(5)
        node.proc = None
        return port

    def signal_replicas(self, sig: signal.Signals) -> None:
        """Send ``sig`` to every live node but the master (SIGSTOP: replicas fall behind)."""
        master = self.master_port()
        for node in self.nodes:
            if node.port != master and node.proc is not None:
                node.proc.send_signal(sig)

    def freeze_master(self) -> tuple[int, RedisServer]:
        """SIGSTOP the current master: alive to its clients' sockets, silent to everyone
        (a partition that leaves the clients on the old master's side)."""
        port = self.master_port()
        node = next(n for n in self.nodes if n.port == port)
        assert node.proc is not None
        node.proc.send_signal(signal.SIGSTOP)
        return port, node

    def wait_new_master(self, old_port: int, seconds: float = 30.0) -> int:
        """Until the Sentinels name a master other than ``old_port`` that takes writes."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                port = self.master_port()
                if port != old_port:
                    r = redis.Redis(port=port, password=self.password, socket_timeout=1)
                    try:
                        if r.info("replication").get("role") == "master":
                            return port
                    finally:
                        r.close()
            except (redis.ConnectionError, redis.ResponseError, RuntimeError):
                pass
            time.sleep(0.1)
        raise RuntimeError(f"no new master after {seconds}s")

    def cleanup(self) -> None:
        for proc in self.sentinels:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.sentinels:
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
        for node in self.nodes:
            node.cleanup()
        shutil.rmtree(self.dir, ignore_errors=True)
