"""Shards: two active operators, each reconciling only the QueueWorkers its selector picks."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from queueworker.operator import cli_operator, shard

from support.operator_cluster import Cluster, wait_for
from support.operator_specs import spec
from support.redis_server import free_port


def test_shard_options_are_checked(capsys: pytest.CaptureFixture[str],
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    assert cli_operator.main(["--shard", "Team_A"]) == 2
    assert "shard name 'Team_A'" in capsys.readouterr().err
    assert cli_operator.main(["--shard-selector", "!queueworker.dev/shard"]) == 2
    assert "needs --shard NAME" in capsys.readouterr().err
    assert cli_operator.main(["--shard", "a", "--shard-selector", "team in (a"]) == 2
    assert "cannot read 'team in (a'" in capsys.readouterr().err
    monkeypatch.setenv(shard.ENV_SHARD, "b")
    assert cli_operator.parser().parse_args([]).shard == "b"
    chosen = shard.shard("b", None)
    assert chosen == shard.Shard("b", "queueworker.dev/shard=b")
    assert chosen.peering == "queueworker-operator-b"
    unlabelled = shard.parse("!queueworker.dev/shard")
    assert shard.matches(unlabelled, {})
    assert not shard.matches(unlabelled, {shard.SHARD_LABEL: "a"})
    assert shard.matches(shard.parse("team in (a, b),tier!=gpu"), {"team": "b"})
    assert not shard.matches(shard.parse("team notin (a, b)"), {"team": "a"})


def scrape(port: int) -> str:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
            text: str = resp.read().decode()
            return text
    except OSError:
        return ""


def series(name: str) -> str:
    return f'queueworker_desired_replicas{{namespace="default",queueworker="{name}"}}'


def start(kubeconfig: str, name: str, metrics: int, log: Path) -> subprocess.Popen[bytes]:
    # The shard by env, as the chart passes it; its own peering object, so both are active.
    env = {**os.environ, "KUBECONFIG": kubeconfig, shard.ENV_SHARD: name}
    return subprocess.Popen(
        [sys.executable, "-m", "queueworker.cli", "operator", "--all-namespaces",
         "--metrics-port", str(metrics), "--status-refresh", "1"],
        env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)


def labelled(name: str | None) -> dict[str, str]:
    return {shard.SHARD_LABEL: name} if name else {}


@pytest.mark.slow
async def test_two_shards_each_reconcile_only_their_own(redis_url: str, tmp_path: Path) -> None:
    async with Cluster() as c:
        for name in ("a", "b"):
            await c.client.create("/apis/kopf.dev/v1/clusterkopfpeerings", {
                "apiVersion": "kopf.dev/v1", "kind": "ClusterKopfPeering",
                "metadata": {"name": f"queueworker-operator-{name}"}}, operation="test")
        for qw, label in (("qa", "a"), ("qb", "b"), ("qn", None)):
            await c.create_qw(qw, spec(redis_url, [qw], poll=0.5))
            await c.client.patch(
                f"/apis/queueworker.dev/v1alpha1/namespaces/default/queueworkers/{qw}",
                {"metadata": {"labels": labelled(label)}}, operation="test_label")
        kubeconfig = c.kubeconfig(str(tmp_path / "kubeconfig"))
        ports = {"a": free_port(), "b": free_port()}
        procs = [start(kubeconfig, name, port, tmp_path / f"{name}.log")
                 for name, port in ports.items()]
        try:
            await wait_for(lambda: c.deployment("qa") and c.deployment("qb"), 60,
                           "each shard's Deployment")
            await wait_for(lambda: series("qa") in scrape(ports["a"])
                           and series("qb") in scrape(ports["b"]), 15, "both shards polling")
            await asyncio.sleep(2)  # several polls of both
            a, b = scrape(ports["a"]), scrape(ports["b"])
            assert series("qb") not in a, "shard a polls only its own"
            assert series("qn") not in a, "shard a polls only its own"
            assert series("qa") not in b, "shard b polls only its own"
            assert series("qn") not in b, "shard b polls only its own"
            assert c.deployment("qn") is None, "a QueueWorker no shard selects is left alone"

            # Labelled into shard a, it enters a's watch (and only a's).
            await c.client.patch(
                "/apis/queueworker.dev/v1alpha1/namespaces/default/queueworkers/qn",
                {"metadata": {"labels": labelled("a")}}, operation="test_label")
            await wait_for(lambda: c.deployment("qn"), 20, "shard a took the relabelled one")
            await wait_for(lambda: series("qn") in scrape(ports["a"]), 10, "shard a polls it")
            assert series("qn") not in scrape(ports["b"])
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
                    try:
                        await asyncio.to_thread(proc.wait, 20)
                    except subprocess.TimeoutExpired:
                        proc.kill()
