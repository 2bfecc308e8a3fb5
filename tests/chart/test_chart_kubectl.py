"""`kubectl apply --dry-run=client` of the rendered chart and the examples.

kubectl needs an API server for discovery (to map each kind to its resource)
even for a client-side dry run. No cluster runs here, so the kmock emulator
serves the discovery documents of the kinds the chart uses. Schema validation
is off (`--validate=false`: kmock serves no OpenAPI documents); the schemas
are checked in test_chart_render.py. What this proves: kubectl parses every
manifest, maps every kind to a resource of the right scope, and would create
each object (the dry run answers `created (dry run)` for each).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import kmock
import yaml

from support.chart_tools import ROOT, render, tool

HERE = Path(__file__).resolve().parent
CLUSTER_SCOPED = {"CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding",
                  "ClusterKopfPeering"}
VERBS = {"get", "list", "watch", "create", "patch", "update", "delete"}


def _resource(kind: str) -> str:
    return kind.lower() + "s"  # every kind here has a regular plural


def _serve_discovery(emulator: Any, docs: list[dict[str, Any]]) -> None:
    core: list[dict[str, Any]] = []
    for api_version, kind in sorted({(d["apiVersion"], d["kind"]) for d in docs}):
        namespaced = kind not in CLUSTER_SCOPED
        resource = emulator.resources[f"{api_version}/{_resource(kind)}"]
        resource.kind = kind
        resource.namespaced = namespaced
        resource.verbs = VERBS
        if "/" not in api_version:
            core.append({"name": _resource(kind), "singularName": kind.lower(), "kind": kind,
                         "namespaced": namespaced, "verbs": sorted(VERBS)})
    # kmock 0.8 lists the core group as groupVersion "/v1", which kubectl
    # rejects; serve the core group's resource list as the API server does.
    emulator["get /api/v1"] << {"kind": "APIResourceList", "apiVersion": "v1",
                                "groupVersion": "v1", "resources": core}


async def _dry_run(docs: list[dict[str, Any]], manifest: Path) -> tuple[int, str, str]:
    async with kmock.KubernetesEmulator() as emulator, kmock.Server(emulator):
        _serve_discovery(emulator, docs)
        proc = await asyncio.create_subprocess_exec(
            tool("kubectl"), f"--server={emulator.url}", "--kubeconfig=/dev/null",
            "apply", "--dry-run=client", "--validate=false", "-f", str(manifest), "-o", "json",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        return proc.returncode or 0, out.decode(), err.decode()


def _applied(stdout: str) -> list[dict[str, Any]]:
    doc = json.loads(stdout)
    items: list[dict[str, Any]] = doc["items"] if doc.get("kind") == "List" else [doc]
    return items


def _key(d: dict[str, Any]) -> tuple[str, str, str]:
    return (d["kind"], d["metadata"].get("namespace", ""), d["metadata"]["name"])


async def test_kubectl_dry_run_applies_the_whole_chart(tmp_path: Path) -> None:
    docs = render(HERE / "values-all.yaml", include_crds=True)
    examples = [d for p in sorted((ROOT / "examples").glob("*.yaml"))
                for d in yaml.safe_load_all(p.read_text(encoding="utf-8")) if d]
    for example in examples:
        example["metadata"].setdefault("namespace", "jobs")
    everything = docs + examples
    manifest = tmp_path / "all.yaml"
    manifest.write_text(yaml.safe_dump_all(everything), encoding="utf-8")
    code, out, err = await _dry_run(everything, manifest)
    assert code == 0, err
    applied = _applied(out)
    assert sorted(map(_key, applied)) == sorted(map(_key, everything))
    # kubectl kept every object as written (it only adds the last-applied annotation).
    by_key = {_key(d): d for d in applied}
    for doc in everything:
        assert by_key[_key(doc)].get("spec") == doc.get("spec"), _key(doc)


async def test_kubectl_rejects_an_unknown_kind(tmp_path: Path) -> None:
    # The dry run does check something: a kind the server does not serve fails.
    docs = render()
    manifest = tmp_path / "bad.yaml"
    bogus = {"apiVersion": "queueworker.dev/v1alpha1", "kind": "QueueWorkr",
             "metadata": {"name": "typo", "namespace": "jobs"}, "spec": {}}
    manifest.write_text(yaml.safe_dump_all([*docs, bogus]), encoding="utf-8")
    code, _, err = await _dry_run(docs, manifest)
    assert code != 0
    assert "QueueWorkr" in err
