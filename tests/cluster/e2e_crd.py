"""The CRD and the examples as the real API server takes them.

The first real API server refused our CRD: it checks CEL rules against a
parent's `default: {}` before nested defaults apply (fixed with has() guards
in api.py). This keeps that from coming back and checks what users see.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from cluster.kubectl import Kubectl

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted(p for p in (ROOT / "examples").glob("*.yaml")
                  if "kind: QueueWorker" in p.read_text())


@pytest.fixture(scope="module")
def crd(kubectl: Kubectl) -> Iterator[None]:
    kubectl.run("apply", "-f", str(ROOT / "crds" / "queueworker.yaml"))
    kubectl.run("wait", "--for=condition=Established", "--timeout=30s",
                "crd/queueworkers.queueworker.dev")
    return


@pytest.fixture
def namespace(kubectl: Kubectl, crd: None) -> Iterator[str]:
    name = f"qw-{uuid.uuid4().hex[:8]}"
    kubectl.run("create", "namespace", name)
    yield name
    kubectl.run("delete", "namespace", name, "--wait=false")


def test_examples_exist() -> None:
    assert len(EXAMPLES) >= 3


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_every_example_is_admitted_and_defaulted(kubectl: Kubectl, namespace: str,
                                                 example: Path) -> None:
    kubectl.run("apply", "-n", namespace, "-f", str(example))
    items = json.loads(kubectl.run("get", "qw", "-n", namespace, "-o", "json").stdout)["items"]
    assert items, f"{example.name}: nothing created"
    for item in items:
        spec = item["spec"]
        # Nested defaults applied by the API server from the generated schema.
        assert "maxReplicas" in spec["scaling"]
        assert "graceSeconds" in spec["drain"]


def test_bad_scaling_bounds_are_refused_by_cel(kubectl: Kubectl, namespace: str) -> None:
    manifest = {
        "apiVersion": "queueworker.dev/v1alpha1", "kind": "QueueWorker",
        "metadata": {"name": "bad", "namespace": namespace},
        "spec": {"redis": {"url": "redis://r:6379/0"}, "queues": [{"name": "q"}],
                 "template": {"spec": {"containers": [{"name": "w", "image": "w"}]}},
                 "scaling": {"minReplicas": 5, "maxReplicas": 2}},
    }
    out = kubectl.run("apply", "-f", "-", stdin=json.dumps(manifest), check=False)
    assert out.returncode != 0
    assert "minReplicas must be <= maxReplicas" in out.stderr


def test_explain_shows_the_field_descriptions(kubectl: Kubectl, crd: None) -> None:
    out = kubectl.run("explain", "queueworker.spec.scaling").stdout
    assert "maxReplicas" in out
    assert "minReplicas" in out
