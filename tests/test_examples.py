"""Examples are accepted, bad specs are rejected, by the CRD and the models alike."""

from __future__ import annotations

import copy
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from queueworker.operator import api
from queueworker.operator.validation import SpecError, parse_manifest

from support.apiserver import admit, load_crd

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))
CRD = load_crd()


def _queueworkers(path: Path) -> list[dict[str, Any]]:
    docs = yaml.safe_load_all(path.read_text(encoding="utf-8"))
    return [d for d in docs if d and d.get("kind") == api.KIND]


def test_there_are_examples_for_each_kind_of_user() -> None:
    names = {p.stem for p in EXAMPLES}
    assert {"gpu-image-generation", "celery-worker", "laravel-worker", "native-worker"} <= names


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_is_admitted_by_crd_and_model(path: Path) -> None:
    qws = _queueworkers(path)
    assert qws, f"{path} has no QueueWorker"
    for qw in qws:
        defaulted, errors = admit(CRD, qw)
        assert errors == []
        spec = parse_manifest(qw)
        # The model's defaults and the CRD's defaults agree.
        assert api.QueueWorkerSpec.model_validate(defaulted["spec"]) == spec


def test_gpu_example_asks_for_one_gpu_per_replica() -> None:
    qw = _queueworkers(ROOT / "examples" / "gpu-image-generation.yaml")[0]
    limits = qw["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert limits["nvidia.com/gpu"] == 1
    assert parse_manifest(qw).scaling.min_replicas == 0


def _base() -> dict[str, Any]:
    return {
        "apiVersion": api.API_VERSION,
        "kind": api.KIND,
        "metadata": {"name": "t"},
        "spec": {
            "redis": {"url": "redis://r:6379/0"},
            "queues": [{"name": "default"}],
            "template": {"spec": {"containers": [{"name": "w", "image": "img:1"}]}},
        },
    }


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(obj: dict[str, Any]) -> None:
        node: Any = obj
        parts = path.split(".")
        for part in parts[:-1]:
            node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
        if value is _DELETE:
            del node[parts[-1]]
        else:
            node[parts[-1]] = value

    return mutate


_DELETE = object()

# (id, mutation, field the message must name, text the rule must contain)
BAD_SPECS: list[tuple[str, list[Callable[[dict[str, Any]], None]], str, str]] = [
    ("min-above-max", [_set("spec.scaling.minReplicas", 5), _set("spec.scaling.maxReplicas", 2)],
     "spec.scaling.minReplicas", "minReplicas <= self.maxReplicas"),
    ("negative-min", [_set("spec.scaling.minReplicas", -1)],
     "spec.scaling.minReplicas", "greater_than_equal"),
    ("zero-max", [_set("spec.scaling.maxReplicas", 0)],
     "spec.scaling.maxReplicas", "greater_than_equal"),
    ("fallback-above-max", [_set("spec.scaling.fallbackReplicas", 50)],
     "spec.scaling.fallbackReplicas", "fallbackReplicas <= self.maxReplicas"),
    ("poll-too-fast", [_set("spec.scaling.pollIntervalSeconds", 0.1)],
     "spec.scaling.pollIntervalSeconds", "greater_than_equal"),
    ("bad-policy", [_set("spec.scaling.policy", "cpu")], "spec.scaling.policy", "enum"),
    ("bad-layout", [_set("spec.queues.0.layout", "kafka")], "spec.queues[0].layout", "enum"),
    ("no-queues", [_set("spec.queues", [])], "spec.queues", "too_short"),
    ("empty-queue-name", [_set("spec.queues.0.name", "")], "spec.queues[0].name", "too_short"),
    ("stream-without-group", [_set("spec.queues.0.layout", "stream")],
     "spec.queues[0].consumerGroup", "has(self.consumerGroup)"),
    ("group-without-stream", [_set("spec.queues.0.consumerGroup", "g")],
     "spec.queues[0].consumerGroup", "self.layout == 'stream'"),
    ("duplicate-queue", [_set("spec.queues", [{"name": "a"}, {"name": "a"}])],
     "spec.queues[1]", "list-map-keys"),
    ("url-and-secret", [_set("spec.redis.urlSecretRef", {"name": "s", "key": "url"})],
     "spec.redis.url", "(has(self.sentinel) ? 1 : 0) == 1"),
    ("no-url", [_set("spec.redis.url", _DELETE)],
     "spec.redis.url", "(has(self.sentinel) ? 1 : 0) == 1"),
    ("url-not-redis", [_set("spec.redis.url", "http://r:6379")],
     "spec.redis.url", "string_pattern_mismatch"),
    ("db-out-of-range", [_set("spec.redis.db", 5000)], "spec.redis.db", "less_than_equal"),
    ("margin-not-below-grace", [_set("spec.drain.graceSeconds", 10),
                                _set("spec.drain.deadlineMarginSeconds", 10)],
     "spec.drain.deadlineMarginSeconds", "deadlineMarginSeconds < self.graceSeconds"),
    ("no-containers", [_set("spec.template.spec.containers", [])],
     "spec.template.spec.containers", "too_short"),
    ("container-without-image", [_set("spec.template.spec.containers", [{"name": "w"}])],
     "spec.template.spec.containers[0].image", "required"),
    ("no-template", [_set("spec.template", _DELETE)], "spec.template", "required"),
    ("string-replicas", [_set("spec.scaling.maxReplicas", "ten")],
     "spec.scaling.maxReplicas", "int_type"),
    ("bad-gpu-resource", [_set("spec.gpu.resourceName", "nvidia.com/gpu count")],
     "spec.gpu.resourceName", "string_pattern_mismatch"),
    ("typo-field", [_set("spec.scaling.maxReplica", 3)], "spec.scaling.maxReplica",
     "no unknown fields"),
    ("tls-ca-and-skip", [_set("spec.redis.tls", {"enabled": True, "insecureSkipVerify": True,
                                                "caSecretRef": {"name": "ca", "key": "ca.crt"}})],
     "spec.redis.tls.insecureSkipVerify", "caSecretRef"),
]


def test_bad_spec_table_is_big_enough() -> None:
    assert len(BAD_SPECS) >= 15


@pytest.mark.parametrize(("mutations", "field", "rule"), [b[1:] for b in BAD_SPECS],
                         ids=[b[0] for b in BAD_SPECS])
def test_bad_spec_rejected_naming_field_and_rule(
    mutations: list[Callable[[dict[str, Any]], None]], field: str, rule: str
) -> None:
    obj = _base()
    for mutate in mutations:
        mutate(obj)
    with pytest.raises(SpecError) as info:
        parse_manifest(obj)
    problems = info.value.problems
    assert any(p.field == field and rule in p.rule for p in problems), problems
    # The API server (schema + strict fields + CEL) rejects it too.
    _, errors = admit(CRD, obj)
    assert errors, f"the CRD accepts what the model rejects: {problems}"


def test_base_spec_is_valid() -> None:
    obj = _base()
    parse_manifest(obj)
    assert admit(CRD, obj)[1] == []


def test_validate_command_reports_without_traceback(tmp_path: Path) -> None:
    obj = _base()
    obj["spec"]["scaling"] = {"minReplicas": 4, "maxReplicas": 1}
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(obj))
    run = subprocess.run([sys.executable, "-m", "queueworker.cli", "validate", "-f", str(bad)],
                         capture_output=True, text=True)
    assert run.returncode == 1
    assert "spec.scaling.minReplicas: minReplicas must be <= maxReplicas" in run.stderr
    assert "Traceback" not in run.stderr + run.stdout


def test_validate_command_reports_unreadable_yaml(tmp_path: Path) -> None:
    bad = tmp_path / "broken.yaml"
    bad.write_text("spec: [unclosed\n")
    run = subprocess.run([sys.executable, "-m", "queueworker.cli", "validate", "-f", str(bad)],
                         capture_output=True, text=True)
    assert run.returncode == 1
    assert "cannot read" in run.stderr
    assert "Traceback" not in run.stderr


def test_defaults_from_models_are_sensible() -> None:
    spec = parse_manifest(copy.deepcopy(_base()))
    assert spec.scaling.scale_down.stabilization_seconds == 60
    assert spec.scaling.scale_up.stabilization_seconds == 0
    assert spec.drain.worker_deadline_seconds == 110
