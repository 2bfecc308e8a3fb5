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
        """Until every node says cluster_state:ok and sees all the others, and every replica
        has synced with its master (a replica that never synced does not fail over)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            live = [s for s in self.servers if s.proc is not None]
            if all(self._node_ok(s, len(self.servers)) and self._synced(s) for s in live):
                return
            time.sleep(0.1)
        raise RuntimeError("the cluster did not reach cluster_state:ok with synced replicas")

    @staticmethod
    def _synced(server: RedisServer) -> bool:
        r = redis.Redis(port=server.port, socket_timeout=1, decode_responses=True)
        try:
            info = r.info("replication")
            return info.get("role") == "master" or info.get("master_link_status") == "up"
        except (redis.ConnectionError, redis.ResponseError):
            return False
        finally:
            r.close()

    @staticmethod
    def _node_ok(server: RedisServer, nodes: int) -> bool:
        r = redis.Redis(port=server.port, socket_timeout=1, decode_responses=True)
        try:
            info = r.cluster("info")
            return bool(info.get("cluster_state") == "ok"
                        and int(info.get("cluster_known_nodes", 0)) == nodes)
        except (redis.ConnectionError, redis.ResponseError):
            return False
        finally:
            r.close()

    def node_id(self, server: RedisServer) -> str:
        r = redis.Redis(port=server.port, decode_responses=True)
        try:
            return str(r.execute_command("CLUSTER", "MYID"))
        finally:
            r.close()

    def migrate_slot(self, slot: int, source: RedisServer, target: RedisServer,
                     batch: int = 10, pause: float = 0.0) -> int:
        """Move one hash slot, keys and all, as ``redis-cli --cluster reshard`` does
        (IMPORTING / MIGRATING, MIGRATE ``batch`` keys a call, ``pause`` seconds between
        calls: a slot with many keys takes that long, then SETSLOT NODE on every master);
        returns the keys moved."""
        src = redis.Redis(port=source.port, decode_responses=True)
        dst = redis.Redis(port=target.port, decode_responses=True)
        src_id, dst_id = self.node_id(source), self.node_id(target)
        moved = 0
        try:
            dst.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", src_id)
            src.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", dst_id)
            while names := src.execute_command("CLUSTER", "GETKEYSINSLOT", slot, batch):
                src.execute_command("MIGRATE", "127.0.0.1", target.port, "", 0, 5000,
                                    "KEYS", *names)
                moved += len(names)
                time.sleep(pause)
            for s in self.servers:
                if s.proc is not None:
                    r = redis.Redis(port=s.port, decode_responses=True)
                    try:
                        if r.info("replication")["role"] == "master":
                            r.execute_command("CLUSTER", "SETSLOT", slot, "NODE", dst_id)
                    finally:
                        r.close()
        finally:
            src.close()
            dst.close()
        return moved

    def cleanup(self) -> None:
        for s in self.servers:
            s.cleanup()
