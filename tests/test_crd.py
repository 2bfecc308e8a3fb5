"""The committed CRD is generated from the models and is a valid, structural v1 CRD."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import yaml

from queueworker.operator import api, crd

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = ROOT / "crds" / "queueworker.yaml"


def test_committed_crd_matches_fresh_generation() -> None:
    fresh = subprocess.run([sys.executable, "-m", "queueworker.cli", "crd"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout
    assert COMMITTED.read_text(encoding="utf-8") == fresh, (
        "crds/queueworker.yaml is stale: run `make crd`"
    )


def test_chart_copy_matches_when_present() -> None:
    chart_copy = ROOT / "charts" / "queueworker-operator" / "crds" / "queueworker.yaml"
    if chart_copy.exists():
        assert chart_copy.read_text(encoding="utf-8") == COMMITTED.read_text(encoding="utf-8")


def _doc() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(COMMITTED.read_text(encoding="utf-8"))
    return doc


def test_valid_against_kubernetes_schema() -> None:
    kubernetes_validate.validate(_doc(), "1.31", strict=True)


def test_identity_and_subresources() -> None:
    doc = _doc()
    spec = doc["spec"]
    assert doc["metadata"]["name"] == "queueworkers.queueworker.dev"
    assert spec["group"] == "queueworker.dev"
    assert spec["scope"] == "Namespaced"
    assert spec["names"]["kind"] == "QueueWorker"
    assert spec["names"]["shortNames"] == ["qw"]
    version = spec["versions"][0]
    assert version["name"] == "v1alpha1"
    assert version["storage"] is True
    assert version["subresources"]["status"] == {}
    assert version["subresources"]["scale"] == {
        "specReplicasPath": ".spec.replicas",
        "statusReplicasPath": ".status.replicas",
        "labelSelectorPath": ".status.selector",
    }
    columns = {c["name"]: c["jsonPath"] for c in version["additionalPrinterColumns"]}
    for name in ("Backlog", "Desired", "Current", "Ready", "GPU-Limited", "Age"):
        assert name in columns
    # Every printer column points at a field the status schema declares.
    status_props = version["schema"]["openAPIV3Schema"]["properties"]["status"]["properties"]
    for path in columns.values():
        if path.startswith(".status."):
            assert path.split(".")[2] in status_props, path


def _walk(node: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    out = [(path, node)]
    for name, sub in (node.get("properties") or {}).items():
        out += _walk(sub, f"{path}.{name}")
    if "items" in node:
        out += _walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        out += _walk(node["additionalProperties"], f"{path}{{}}")
    return out


def test_schema_is_structural() -> None:
    schema = _doc()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for path, node in _walk(schema):
        assert "type" in node, f"{path} has no type"
        for banned in ("$ref", "anyOf", "oneOf", "allOf", "nullable", "title"):
            assert banned not in node, f"{path} uses {banned}"
        if "default" in node:
            assert node["default"] is not None, path


def test_schema_carries_descriptions_defaults_enums_bounds_and_cel() -> None:
    schema = _doc()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    nodes = dict(_walk(schema))
    scaling = nodes[".spec.scaling"]
    assert scaling["properties"]["maxReplicas"]["default"] == 10
    assert scaling["properties"]["minReplicas"]["minimum"] == 0
    rules = [r["rule"] for r in scaling["x-kubernetes-validations"]]
    assert any(r.endswith("self.minReplicas <= self.maxReplicas") for r in rules)
    layout = nodes[".spec.queues[].layout"]
    assert set(layout["enum"]) == {m.value for m in api.QueueLayout}
    assert nodes[".spec.queues"]["x-kubernetes-list-type"] == "map"
    described = [p for p, n in _walk(schema["properties"]["spec"]) if "description" in n]
    assert len(described) > 40


def test_every_cel_rule_compiles() -> None:
    import celpy

    env = celpy.Environment()
    schema = _doc()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    count = 0
    for _, node in _walk(schema):
        for rule in node.get("x-kubernetes-validations", []):
            env.compile(rule["rule"])
            assert rule["message"]
            count += 1
    assert count >= 5


def test_render_is_deterministic() -> None:
    assert crd.render() == crd.render()


def test_committed_reference_matches_fresh_generation() -> None:
    fresh = subprocess.run([sys.executable, "-m", "queueworker.cli", "crd", "--reference"],
                           cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert (ROOT / "crds" / "REFERENCE.md").read_text(encoding="utf-8") == fresh, (
        "crds/REFERENCE.md is stale: run `make crd`"
    )
    assert "spec.scaling.maxReplicas" in fresh
