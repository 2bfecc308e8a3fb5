"""Shards: two active operators, each reconciling only the QueueWorkers its selector picks."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import kmock
import kopf
import pytest

from queueworker.operator import cli_operator, handlers, shard
from queueworker.operator.cluster import deployment as dep
from queueworker.operator.controller.context import OperatorConfig
from queueworker.operator.validation import parse_spec

from support.kube_emulator import DEPLOYMENTS, PODS
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


def test_a_shard_stamps_its_name_and_watches_by_it() -> None:
    spec_ = parse_spec(spec("redis://localhost:6379/0", ["jobs"]))
    plain = dep.build_deployment("w", "ns", "u", spec_, replicas=1)
    assert dep.LABEL_SHARD not in plain["metadata"]["labels"], "unsharded: as before"
    assert dep.LABEL_SHARD not in plain["spec"]["template"]["metadata"]["labels"]
    stamped = dep.build_deployment("w", "ns", "u", spec_, replicas=1, shard="a")
    assert stamped["metadata"]["labels"][dep.LABEL_SHARD] == "a"
    assert stamped["spec"]["template"]["metadata"]["labels"][dep.LABEL_SHARD] == "a"
    assert stamped["spec"]["selector"] == plain["spec"]["selector"], "selector immutable"


@pytest.mark.parametrize(("all_pods", "pods"), [(False, "queueworker.dev/shard=a"),
                                                (True, None)])
async def test_startup_selects_deployments_and_pods_server_side(
        all_pods: bool, pods: str | None) -> None:
    settings = kopf.OperatorSettings()
    memo = handlers.operator_memo(OperatorConfig(shard_selector="team=x", shard="a",
                                                 shard_all_pods=all_pods))
    await handlers.startup(settings=settings, memo=memo)
    try:
        def selector(group: str, plural: str) -> str | None:
            res = kopf.Resource(group, "v1", plural)
            return ",".join(settings.watching.label_selectors.collect(res)) or None
        assert selector("apps", "deployments") == (
            "app.kubernetes.io/managed-by=queueworker-operator,queueworker.dev/shard=a")
        assert selector("", "pods") == pods
        assert selector("", "nodes") is None
        # The daemon's filter: what stops the loop of a QueueWorker relabelled away.
        assert handlers.in_shard(labels={"team": "x"}, memo=memo)
        assert not handlers.in_shard(labels={"team": "y"}, memo=memo)
    finally:
        await handlers.cleanup(memo=memo)
    unsharded = kopf.OperatorSettings()
    memo = handlers.operator_memo(OperatorConfig())
    await handlers.startup(settings=unsharded, memo=memo)
    await handlers.cleanup(memo=memo)
    assert not list(unsharded.watching.label_selectors), "unsharded: every object, as before"
    assert handlers.in_shard(labels={}, memo=memo)


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


def stamped(c: Cluster, qw: str) -> set[str | None] | None:
    """The shard labels on the Deployment of ``qw``, its template and its running pods."""
    d = c.deployment(qw)
    pods = [p for p in c.pods(qw) if not p["metadata"].get("deletionTimestamp")]
    if d is None or not pods:
        return None
    return {(o.get("labels") or {}).get(dep.LABEL_SHARD)
            for o in (d["metadata"], d["spec"]["template"]["metadata"],
                      *(p["metadata"] for p in pods))}


def asked(c: Cluster, resource: str) -> set[str | None]:
    """The label selectors of every list and watch of ``resource`` served so far."""
    return {selector for res, selector in c.k.asked if res == kmock.resource(resource)}


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
            await c.create_qw(qw, spec(redis_url, [qw], poll=0.5, minReplicas=1))
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
            # Each shard's Deployments and pods carry its name, and its watches of them
            # select on it server side: its indexes hold its own objects only.
            for qw, name in (("qa", "a"), ("qb", "b")):
                await wait_for(lambda qw=qw, name=name: stamped(c, qw) == {name}, 30,
                               f"{qw}'s Deployment and pods labelled shard {name}")
            own = {"queueworker.dev/shard=a", "queueworker.dev/shard=b"}
            assert asked(c, PODS) == own
            assert asked(c, DEPLOYMENTS) == {f"{dep.LABEL_MANAGED_BY}={dep.MANAGED_BY},{o}"
                                             for o in own}

            # Labelled into shard a, it enters a's watch (and only a's).
            await c.client.patch(
                "/apis/queueworker.dev/v1alpha1/namespaces/default/queueworkers/qn",
                {"metadata": {"labels": labelled("a")}}, operation="test_label")
            await wait_for(lambda: c.deployment("qn"), 20, "shard a took the relabelled one")
            await wait_for(lambda: series("qn") in scrape(ports["a"]), 10, "shard a polls it")
            assert series("qn") not in scrape(ports["b"])
            await wait_for(lambda: stamped(c, "qn") == {"a"}, 30, "qn's objects labelled a")

            # Moved from shard b to a: a's first reconcile meets the Deployment its
            # watch does not show, stamps it and its pod template (the pods roll), and
            # from then on a's indexes hold it; b lets it go.
            await c.client.patch(
                "/apis/queueworker.dev/v1alpha1/namespaces/default/queueworkers/qb",
                {"metadata": {"labels": labelled("a")}}, operation="test_label")
            await wait_for(lambda: stamped(c, "qb") == {"a"}, 60,
                           "qb's Deployment and pods relabelled a")
            await wait_for(lambda: series("qb") in scrape(ports["a"]), 20, "a polls qb")
            await wait_for(lambda: series("qb") not in scrape(ports["b"]), 20, "b lets qb go")
            assert c.replicas("qb") == 1
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
                    try:
                        await asyncio.to_thread(proc.wait, 20)
                    except subprocess.TimeoutExpired:
                        proc.kill()
