"""A real Redis Cluster on loopback: 6 redis-server nodes (3 masters, 3 replicas) joined
by ``redis-cli --cluster create``."""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import time

import redis

from support.redis_server import RedisServer

# A cluster node also listens on its port + 10000 (the cluster bus).
BUS_OFFSET = 10000


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def bus_ports(n: int) -> list[int]:
    """``n`` distinct ports below the ephemeral range whose bus ports are free too."""
    rng = random.Random()
    out: list[int] = []
    while len(out) < n:
        port = rng.randrange(20000, 30000)
        if port not in out and _free(port) and _free(port + BUS_OFFSET):
            out.append(port)
    return out


class ClusterSetup:
    def __init__(self, nodes: int = 6, replicas: int = 1) -> None:
        self.servers = [RedisServer("--cluster-enabled", "yes", "--cluster-node-timeout", "2000",
                                    "--cluster-config-file", "nodes.conf", port=port)
                        for port in bus_ports(nodes)]
        self.replicas = replicas

    @property
    def addresses(self) -> list[str]:
        return [f"127.0.0.1:{s.port}" for s in self.servers]

    def url(self) -> str:
        """The redis+cluster:// URL of every node (worker/connection.py)."""
        return f"redis+cluster://{','.join(self.addresses)}"

    def start(self) -> ClusterSetup:
        for s in self.servers:
            s.start()
        cli = shutil.which("redis-cli")
        if cli is None:
            raise RuntimeError("redis-cli not found: run `make setup` (scripts/ensure-tools.sh)")
        subprocess.run([cli, "--cluster", "create", *self.addresses, "--cluster-replicas",
                        str(self.replicas), "--cluster-yes"], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=60)
        self.wait_ok()
        return self

    def wait_ok(self, seconds: float = 30.0) -> None:
        """Until every node says cluster_state:ok and sees all the others."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if all(self._node_ok(s) for s in self.servers):
                return
            time.sleep(0.1)
        raise RuntimeError("the cluster did not reach cluster_state:ok")

    def _node_ok(self, server: RedisServer) -> bool:
        r = redis.Redis(port=server.port, socket_timeout=1, decode_responses=True)
        try:
            info = r.cluster("info")
            return bool(info.get("cluster_state") == "ok"
                        and int(info.get("cluster_known_nodes", 0)) == len(self.servers))
        except (redis.ConnectionError, redis.ResponseError):
            return False
        finally:
            r.close()

    def cleanup(self) -> None:
        for s in self.servers:
            s.cleanup()
