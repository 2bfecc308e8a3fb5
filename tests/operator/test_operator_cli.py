"""`queueworker operator`: options, and two replicas with peering (one acts at a time)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from queueworker.operator import cli_operator

from support.operator_cluster import Cluster, wait_for
from support.operator_specs import push_jobs, spec
from support.redis_server import free_port


def test_help_and_bad_options(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_operator.main(["--help"]) == 0
    assert "--all-namespaces" in capsys.readouterr().out
    assert cli_operator.main(["--metrics-port", "70000"]) == 2
    assert "--metrics-port" in capsys.readouterr().err
    assert cli_operator.main(["--namespace", "a", "--all-namespaces"]) == 2
    assert "not allowed" in capsys.readouterr().err
    assert cli_operator.main(["--peering", "x", "--standalone"]) == 2


def test_privileged_refused_by_default_and_peering_lifetime_checked(
        capsys: pytest.CaptureFixture[str]) -> None:
    # Like the chart: the CLI refuses privileged templates unless told not to.
    assert cli_operator.parser().parse_args([]).refuse_privileged is True
    opted_out = cli_operator.parser().parse_args(["--no-refuse-privileged"])
    assert opted_out.refuse_privileged is False
    assert cli_operator.main(["--peering-lifetime", "2"]) == 2
    assert "--peering-lifetime" in capsys.readouterr().err


def scrape(port: int) -> str:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
            text: str = resp.read().decode()
            return text
    except OSError:
        return ""


def healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def start(kubeconfig: str, priority: int, metrics: int, health: int, log: Path
          ) -> subprocess.Popen[bytes]:
    env = {**os.environ, "KUBECONFIG": kubeconfig}
    return subprocess.Popen(
        [sys.executable, "-m", "queueworker.cli", "operator", "--all-namespaces",
         "--peering", "qw-test", "--priority", str(priority), "--metrics-port", str(metrics),
         "--liveness", f"http://127.0.0.1:{health}/healthz", "--status-refresh", "1"],
        env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)


async def test_two_replicas_one_active_then_failover(redis_url: str, tmp_path: Path) -> None:
    async with Cluster() as c:
        await c.client.create("/apis/kopf.dev/v1/clusterkopfpeerings", {
            "apiVersion": "kopf.dev/v1", "kind": "ClusterKopfPeering",
            "metadata": {"name": "qw-test"}}, operation="test")
        kubeconfig = c.kubeconfig(str(tmp_path / "kubeconfig"))
        ports = [(free_port(), free_port()) for _ in range(2)]
        high = start(kubeconfig, 200, *ports[0], tmp_path / "high.log")
        low = start(kubeconfig, 100, *ports[1], tmp_path / "low.log")
        try:
            await wait_for(lambda: healthy(ports[0][1]) and healthy(ports[1][1]), 30,
                           "both liveness endpoints")
            await c.create_qw("ha", spec(redis_url, ["ha"], poll=0.5,
                                         targetBacklogPerReplica=10))
            await wait_for(lambda: c.deployment("ha"), 15, "the Deployment")
            series = 'queueworker_desired_replicas{namespace="default",queueworker="ha"}'
            await wait_for(lambda: series in scrape(ports[0][0]), 10, "metrics of the active")
            await asyncio.sleep(2)
            assert series not in scrape(ports[1][0]), "the standby must not act"

            high.send_signal(signal.SIGTERM)
            await asyncio.to_thread(high.wait, 20)
            push_jobs(redis_url, "ha", 30)
            await wait_for(lambda: c.replicas("ha") == 3, 30, "the standby took over")
            assert series in scrape(ports[1][0])
        finally:
            for proc in (high, low):
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
                    try:
                        await asyncio.to_thread(proc.wait, 20)
                    except subprocess.TimeoutExpired:
                        proc.kill()
