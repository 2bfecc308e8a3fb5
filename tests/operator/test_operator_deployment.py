"""The Deployment builder and drift check, without a cluster."""

from __future__ import annotations

import copy
from typing import Any

from queueworker.operator.cluster import deployment as dep
from queueworker.operator.validation import parse_spec
from queueworker.worker import config as worker_config


def make(**over: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "redis": {"urlSecretRef": {"name": "redis", "key": "url"},
                  "passwordSecretRef": {"name": "redis", "key": "password"}, "db": 3},
        "queues": [{"name": "a", "keyPrefix": "app"}, {"name": "b", "layout": "list"}],
        "template": {"metadata": {"labels": {"team": "x", "app.kubernetes.io/instance": "lie"}},
                     "spec": {"containers": [{
                         "name": "w", "image": "img:1",
                         "env": [{"name": "QUEUEWORKER_QUEUES", "value": "mine"}],
                         "resources": {"limits": {"nvidia.com/gpu": "2", "cpu": "500m"}}}]}},
        "drain": {"graceSeconds": 30, "deadlineMarginSeconds": 10},
    }
    spec.update(over)
    return dep.build_deployment("w1", "ns", "uid-1", parse_spec(spec), replicas=2)


def test_env_secrets_and_user_overrides() -> None:
    d = make()
    c = d["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e for e in c["env"]}
    assert env["QUEUEWORKER_REDIS_URL"]["valueFrom"] == {
        "secretKeyRef": {"name": "redis", "key": "url"}}
    assert env["QUEUEWORKER_REDIS_PASSWORD"]["valueFrom"] == {
        "secretKeyRef": {"name": "redis", "key": "password"}}
    assert env["QUEUEWORKER_REDIS_DB"]["value"] == "3"
    assert env["QUEUEWORKER_DRAIN_DEADLINE"]["value"] == "20"
    assert env["QUEUEWORKER_PREFIX"]["value"] == "app"
    # The user's own value wins and is not duplicated.
    assert [e["value"] for e in c["env"] if e["name"] == "QUEUEWORKER_QUEUES"] == ["mine"]
    labels = d["spec"]["template"]["metadata"]["labels"]
    assert labels["team"] == "x"
    assert labels["app.kubernetes.io/instance"] == "w1"  # ours: the selector depends on it
    assert d["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 30
    assert d["spec"]["replicas"] == 2


def test_gpu_request_and_hash_ignores_replicas() -> None:
    spec = parse_spec(make_spec())
    assert dep.gpu_request(spec) == ("nvidia.com/gpu", 2)
    a = dep.build_deployment("w1", "ns", "u", spec, replicas=1)
    b = dep.build_deployment("w1", "ns", "u", spec, replicas=9)
    key = dep.SPEC_HASH_ANNOTATION
    assert a["metadata"]["annotations"][key] == b["metadata"]["annotations"][key]
    spec2 = parse_spec(make_spec(image="img:2"))
    c = dep.build_deployment("w1", "ns", "u", spec2, replicas=1)
    assert c["metadata"]["annotations"][key] != a["metadata"]["annotations"][key]


def make_spec(image: str = "img:1") -> dict[str, Any]:
    return {"redis": {"url": "redis://r:6379/0"}, "queues": [{"name": "q"}],
            "template": {"spec": {"containers": [{
                "name": "w", "image": image,
                "resources": {"limits": {"nvidia.com/gpu": "2"}}}]}}}


def test_drift_ignores_server_defaults_but_not_edits() -> None:
    desired = make()
    live = copy.deepcopy(desired)
    c = live["spec"]["template"]["spec"]["containers"][0]
    c["imagePullPolicy"] = "IfNotPresent"  # defaulted by the API server
    c["resources"]["limits"]["cpu"] = "0.5"  # normalised quantity
    live["spec"]["template"]["spec"]["dnsPolicy"] = "ClusterFirst"
    assert dep.drift(desired, live) == []
    c["image"] = "other:1"
    assert dep.drift(desired, live) == ["spec.template"]
    c["image"] = "img:1"
    c["env"].append({"name": "EXTRA", "value": "1"})
    assert dep.drift(desired, live) == ["spec.template"]


def test_owned_by() -> None:
    d = make()
    assert dep.owned_by(d, "uid-1")
    assert not dep.owned_by(d, "uid-2")


def test_the_worker_reads_every_setting_the_builder_writes() -> None:
    """The env names are the worker's own (queueworker.worker.config): what the
    Deployment sets, the worker's settings show, as a kubelet would resolve it."""
    spec = parse_spec({
        "redis": {"url": "redis://r:6379/0", "passwordSecretRef": {"name": "s", "key": "p"},
                  "username": "u", "db": 4, "tls": {"enabled": True}},
        "queues": [{"name": "hi", "keyPrefix": "app"}, {"name": "lo"}],
        "template": {"spec": {"containers": [{"name": "w", "image": "i"}]}},
        "drain": {"graceSeconds": 60, "deadlineMarginSeconds": 15}})
    env_list = dep.build_pod_template("w1", spec)["spec"]["containers"][0]["env"]
    resolved = {"secretKeyRef": "pw", "fieldRef": "w1-abc"}
    env = {e["name"]: e.get("value") or resolved[next(iter(e["valueFrom"]))] for e in env_list}
    settings = worker_config.from_env(env)
    assert settings.redis_url == "rediss://u:pw@r:6379/4"
    assert (settings.queues, settings.prefix) == (["hi", "lo"], "app")
    assert (settings.drain_deadline, settings.pod) == (45.0, "w1-abc")
