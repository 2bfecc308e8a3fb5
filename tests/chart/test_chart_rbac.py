"""The chart's RBAC: exactly what the operator calls, in both scopes, and nothing with `*`.

The check against what the operator really calls is
tests/security/test_security_operator_audit.py; this keeps the template honest
in both RBAC modes (all namespaces: one ClusterRole; watched namespaces: Roles).
The chart also ships ClusterRoles for people, aggregated into the built-in
admin/edit/view roles, so QueueWorker rights follow the usual pod rights.
"""

from __future__ import annotations

from typing import Any

from support.chart_tools import NAMESPACE, VALUES_ALL, by_kind, one, render

# The exact permissions, as (apiGroup, resource) -> verbs.
NAMESPACED_RULES = {
    ("queueworker.dev", "queueworkers/status"): {"patch"},
    ("queueworker.dev", "queueworkers/finalizers"): {"update"},
    ("apps", "deployments"): {"get", "list", "watch", "create", "patch"},
    ("", "pods"): {"list", "watch", "patch"},
    ("", "events"): {"create"},
    ("", "secrets"): {"get"},
}
# The QueueWorkers themselves: in the ClusterRole in both modes, deliberately. With
# watchNamespaces a namespace's deletion may remove the operator's Role before its
# QueueWorkers; the operator must still be able to take its finalizer off them, or the
# namespace stays Terminating (tests/cluster/e2e_helm.py deletes the Role first, then
# the namespace). The operator's own CRD only: no create, no delete, nothing else.
QUEUEWORKERS = {("queueworker.dev", "queueworkers"): {"list", "watch", "patch"}}
CLUSTER_RULES = {
    **QUEUEWORKERS,
    ("", "nodes"): {"list", "watch"},
    ("apiextensions.k8s.io", "customresourcedefinitions"): {"list", "watch"},
    ("", "namespaces"): {"list", "watch"},
}
PEERING_RULE = {"get", "list", "watch", "patch"}
AGGREGATE = "rbac.authorization.k8s.io/aggregate-to-"
READ = {"get", "list", "watch"}
WRITE = READ | {"create", "update", "patch", "delete", "deletecollection"}
# What a namespace admin / editor / viewer may do with QueueWorkers.
PEOPLE_RULES = {
    "admin": {("queueworker.dev", "queueworkers"): WRITE,
              ("queueworker.dev", "queueworkers/scale"): {"get", "update", "patch"},
              ("queueworker.dev", "queueworkers/status"): READ},
    "view": {("queueworker.dev", "queueworkers"): READ,
             ("queueworker.dev", "queueworkers/scale"): READ,
             ("queueworker.dev", "queueworkers/status"): READ},
}
PEOPLE_RULES["edit"] = PEOPLE_RULES["admin"]


def _aggregated(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The ClusterRoles aggregated into a built-in role, by that role's name."""
    out: dict[str, dict[str, Any]] = {}
    for role in by_kind(docs, "ClusterRole"):
        for label, value in role["metadata"]["labels"].items():
            if label.startswith(AGGREGATE):
                assert value == "true", label
                assert label[len(AGGREGATE):] not in out, f"{label} twice"
                out[label[len(AGGREGATE):]] = role
    return out


def _operator_role(docs: list[dict[str, Any]]) -> dict[str, Any]:
    """The operator's ClusterRole: the one its ClusterRoleBinding names."""
    binding = one(docs, "ClusterRoleBinding")
    (role,) = [r for r in by_kind(docs, "ClusterRole")
               if r["metadata"]["name"] == binding["roleRef"]["name"]]
    assert role not in _aggregated(docs).values(), "the operator's role is aggregated"
    r: dict[str, Any] = role
    return r


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
    role = _operator_role(default_docs)
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
    cluster_role = _operator_role(all_docs)
    assert _rules(cluster_role) == {**CLUSTER_RULES, ("", "pods"): {"list", "watch"}}
    without_pods = render(VALUES_ALL, sets=["rbac.clusterWidePodRead=false"])
    assert _rules(_operator_role(without_pods)) == CLUSTER_RULES


def test_rbac_and_service_account_can_be_turned_off() -> None:
    docs = render(sets=["rbac.create=false", "serviceAccount.create=false",
                        "serviceAccount.name=existing"])
    kinds = {d["kind"] for d in docs}
    assert not kinds & {"ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding",
                        "ServiceAccount"}
    assert one(docs, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"] == "existing"


def test_queueworker_rights_aggregate_into_admin_edit_view(
        default_docs: list[dict[str, Any]]) -> None:
    roles = _aggregated(default_docs)
    assert set(roles) == {"admin", "edit", "view"}
    for name, role in roles.items():
        assert _rules(role) == PEOPLE_RULES[name], name
        # Each one feeds exactly one built-in role, and nothing but QueueWorkers.
        assert [k for k in role["metadata"]["labels"] if k.startswith(AGGREGATE)] == [
            AGGREGATE + name]
        assert {g for g, _ in _rules(role)} == {"queueworker.dev"}
    # Nobody but the operator writes status; finalizers are the operator's too.
    for role in roles.values():
        rules = _rules(role)
        assert rules[("queueworker.dev", "queueworkers/status")] == READ
        assert ("queueworker.dev", "queueworkers/finalizers") not in rules
    # The same roles in namespaced mode: people's rights do not depend on the scope
    # the operator watches (the built-in roles are bound per namespace anyway).
    assert {n: _rules(r) for n, r in _aggregated(render(VALUES_ALL)).items()} == PEOPLE_RULES


def test_aggregated_roles_can_be_turned_off() -> None:
    docs = render(sets=["rbac.aggregateToDefaultRoles=false"])
    assert _aggregated(docs) == {}
    assert [r["metadata"]["name"] for r in by_kind(docs, "ClusterRole")] == [
        _operator_role(docs)["metadata"]["name"]]
