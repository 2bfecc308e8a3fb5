"""The chart's RBAC: exactly what the operator calls, in both scopes, and nothing with `*`.

The check against what the operator really calls is
tests/security/test_security_operator_audit.py; this keeps the template honest
in both RBAC modes (all namespaces: one ClusterRole; watched namespaces: Roles).
"""

from __future__ import annotations

from typing import Any

from support.chart_tools import NAMESPACE, VALUES_ALL, by_kind, one, render

# The exact permissions, as (apiGroup, resource) -> verbs.
NAMESPACED_RULES = {
    ("queueworker.dev", "queueworkers"): {"list", "watch", "patch"},
    ("queueworker.dev", "queueworkers/status"): {"patch"},
    ("queueworker.dev", "queueworkers/finalizers"): {"update"},
    ("apps", "deployments"): {"get", "list", "watch", "create", "patch"},
    ("", "pods"): {"list", "watch", "patch"},
    ("", "events"): {"create"},
    ("", "secrets"): {"get"},
}
CLUSTER_RULES = {
    ("", "nodes"): {"list", "watch"},
    ("apiextensions.k8s.io", "customresourcedefinitions"): {"list", "watch"},
    ("", "namespaces"): {"list", "watch"},
}
PEERING_RULE = {"get", "list", "watch", "patch"}


def _rules(role: dict[str, Any]) -> dict[tuple[str, str], set[str]]:
    out: dict[tuple[str, str], set[str]] = {}
    for rule in role["rules"]:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                key = (group, resource)
                assert key not in out, f"{key} granted twice"
                assert "*" not in rule["verbs"]
                assert resource != "*"
                assert group != "*"
                out[key] = set(rule["verbs"])
    return out


def test_rbac_all_namespaces_is_one_cluster_role(default_docs: list[dict[str, Any]]) -> None:
    role = one(default_docs, "ClusterRole")
    assert _rules(role) == {**NAMESPACED_RULES, **CLUSTER_RULES,
                            ("kopf.dev", "clusterkopfpeerings"): PEERING_RULE}
    assert not by_kind(default_docs, "Role")
    binding = one(default_docs, "ClusterRoleBinding")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    sa = one(default_docs, "ServiceAccount")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": sa["metadata"]["name"],
                                    "namespace": NAMESPACE}]


def test_rbac_watch_namespaces_uses_roles(all_docs: list[dict[str, Any]]) -> None:
    roles = by_kind(all_docs, "Role")
    assert {r["metadata"]["namespace"] for r in roles} == {"jobs", "ml"}
    for role in roles:
        assert _rules(role) == {**NAMESPACED_RULES, ("kopf.dev", "kopfpeerings"): PEERING_RULE}
    bindings = by_kind(all_docs, "RoleBinding")
    assert {b["metadata"]["namespace"] for b in bindings} == {"jobs", "ml"}
    for binding in bindings:
        assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                      "name": "queueworker-operator"}
        assert binding["subjects"][0]["name"] == "queueworker-operator-sa"
        assert binding["subjects"][0]["namespace"] == NAMESPACE
    # Only cluster-scoped bits (plus pod reads to count GPUs on nodes) stay cluster-wide.
    cluster_role = one(all_docs, "ClusterRole")
    assert _rules(cluster_role) == {**CLUSTER_RULES, ("", "pods"): {"list", "watch"}}
    without_pods = render(VALUES_ALL, sets=["rbac.clusterWidePodRead=false"])
    assert _rules(one(without_pods, "ClusterRole")) == CLUSTER_RULES


def test_rbac_and_service_account_can_be_turned_off() -> None:
    docs = render(sets=["rbac.create=false", "serviceAccount.create=false",
                        "serviceAccount.name=existing"])
    kinds = {d["kind"] for d in docs}
    assert not kinds & {"ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding",
                        "ServiceAccount"}
    assert one(docs, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"] == "existing"
