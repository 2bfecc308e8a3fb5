"""`helm template` of the chart, default and with every option on, checked against
the Kubernetes schemas (kubernetes_validate, strict), the prometheus-operator
schemas, the CRDs (custom resources), and what the operator needs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from support.apiserver import admit
from support.chart_tools import (
    CHART,
    DASHBOARDS,
    KUBE_VERSION,
    NAMESPACE,
    RELEASE,
    VALUES_ALL,
    alert_rules,
    by_kind,
    load_rules,
    one,
    render,
    validate_monitoring,
)

HERE = Path(__file__).resolve().parent
# The oldest Kubernetes Chart.yaml admits.
MIN_KUBE_VERSION = ".".join(
    yaml.safe_load((CHART / "Chart.yaml").read_text())["kubeVersion"]
    .removeprefix(">=").split("-")[0].split(".")[:2])
KUBE_VERSIONS = (MIN_KUBE_VERSION, KUBE_VERSION, kubernetes_validate.latest_version())
MONITORING_KINDS = {"ServiceMonitor", "PodMonitor", "PrometheusRule"}
PEERING_KINDS = {"KopfPeering", "ClusterKopfPeering"}




def _values_all() -> dict[str, Any]:
    values: dict[str, Any] = yaml.safe_load(VALUES_ALL.read_text(encoding="utf-8"))
    return values


def _crds(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {d["spec"]["names"]["kind"]: d for d in by_kind(docs, "CustomResourceDefinition")}


def _validate_all(docs: list[dict[str, Any]]) -> set[str]:
    """Validate every manifest with the right schema; the kinds seen."""
    crds = _crds(docs)
    monitoring = [d for d in docs if d["kind"] in MONITORING_KINDS]
    for doc in docs:
        if doc["kind"] in crds:
            _, problems = admit(crds[doc["kind"]], doc)
            assert not problems, f"{doc['kind']}/{doc['metadata']['name']}: {problems}"
        elif doc["kind"] not in MONITORING_KINDS:
            # The oldest Kubernetes the chart supports (Chart.yaml kubeVersion)
            # and the newest schema there is.
            for version in KUBE_VERSIONS:
                kubernetes_validate.validate(doc, version, strict=True)
    results = validate_monitoring(monitoring)
    assert len(results) == len(monitoring)
    assert [r for r in results if r["errors"]] == []
    return {d["kind"] for d in docs}


def test_default_render_is_valid(default_docs: list[dict[str, Any]]) -> None:
    kinds = _validate_all(default_docs)
    assert kinds == {"CustomResourceDefinition", "ServiceAccount", "ClusterRole",
                     "ClusterRoleBinding", "Deployment", "Service", "ConfigMap", "Pod"}
    # Off by default: the monitoring CRDs may not be installed; one replica needs
    # neither peering nor a PodDisruptionBudget.
    assert not kinds & (MONITORING_KINDS | PEERING_KINDS | {"PodDisruptionBudget"})


def test_all_options_render_is_valid(all_docs: list[dict[str, Any]]) -> None:
    kinds = _validate_all(all_docs)
    assert kinds >= MONITORING_KINDS | {"KopfPeering", "PodDisruptionBudget", "Role",
                                        "RoleBinding", "ClusterRole", "ConfigMap"}


def test_min_kube_version_admits_the_crd() -> None:
    # Chart.yaml's kubeVersion must not promise a Kubernetes that rejects the
    # CRD (1.27 has no x-kubernetes-validations fieldPath, which the CRD uses).
    crd = yaml.safe_load((CHART / "crds" / "queueworker.yaml").read_text())
    kubernetes_validate.validate(crd, MIN_KUBE_VERSION, strict=True)


def test_validation_catches_a_broken_manifest(default_docs: list[dict[str, Any]]) -> None:
    # The checks above must be able to fail: a typo in a Deployment and a
    # ServiceMonitor without its selector are rejected.
    deployment = json.loads(json.dumps(one(default_docs, "Deployment")))
    deployment["spec"]["template"]["spec"]["containers"][0]["imagePullPolcy"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBE_VERSION, strict=True)
    broken = {"apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor",
              "metadata": {"name": "x"}, "spec": {"endpoints": [{"port": 9090}]}}
    (result,) = validate_monitoring([broken])
    assert "selector" in result["errors"]
    assert "port" in result["errors"]


def test_crds_match_the_repo_and_include_kopf_peering(default_docs: list[dict[str, Any]]) -> None:
    crds = _crds(default_docs)
    assert set(crds) == {"QueueWorker", "KopfPeering", "ClusterKopfPeering"}
    repo_crd = yaml.safe_load((CHART.parents[1] / "crds" / "queueworker.yaml").read_text())
    assert crds["QueueWorker"] == repo_crd
    for kind, scope in (("KopfPeering", "Namespaced"), ("ClusterKopfPeering", "Cluster")):
        spec = crds[kind]["spec"]
        assert spec["group"] == "kopf.dev"
        assert spec["scope"] == scope
        version = spec["versions"][0]
        assert version["name"] == "v1"
        assert version["served"]
        assert version["storage"]
        status = version["schema"]["openAPIV3Schema"]["properties"]["status"]
        assert status["x-kubernetes-preserve-unknown-fields"] is True


def test_examples_are_admitted_by_the_charts_crd(default_docs: list[dict[str, Any]]) -> None:
    crd = _crds(default_docs)["QueueWorker"]
    examples = sorted((CHART.parents[1] / "examples").glob("*.yaml"))
    assert examples
    for path in examples:
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if doc and doc.get("kind") == "QueueWorker":
                assert admit(crd, doc)[1] == [], path.name


def _container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    deployment = one(docs, "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    c: dict[str, Any] = container
    return c


def test_operator_deployment_defaults(default_docs: list[dict[str, Any]]) -> None:
    deployment = one(default_docs, "Deployment")
    assert deployment["metadata"]["namespace"] == NAMESPACE
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    container = _container(default_docs)
    assert container["image"] == "ghcr.io/queueworker/queueworker:0.1.0"
    assert container["args"] == ["operator", "--all-namespaces", "--standalone",
                                 "--liveness=http://0.0.0.0:8080/healthz",
                                 "--metrics-port=9090", "--log-level=info",
                                 "--refuse-privileged"]
    assert "command" not in container  # the image's ENTRYPOINT is `queueworker`
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"metrics": 9090, "health": 8080}
    assert container["resources"]["requests"]
    assert container["resources"]["limits"]["memory"]
    # Selector labels never include the version or chart (the selector is immutable).
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert not {"app.kubernetes.io/version", "helm.sh/chart"} & set(selector)


def test_security_context_is_locked_down(all_docs: list[dict[str, Any]]) -> None:
    for docs in (render(), all_docs):
        container = _container(docs)
        sc = container["securityContext"]
        assert sc["runAsNonRoot"] is True
        assert sc["readOnlyRootFilesystem"] is True
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"] == {"drop": ["ALL"]}
        assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
        pod = one(docs, "Deployment")["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}


def test_all_options_reach_the_deployment(all_docs: list[dict[str, Any]]) -> None:
    values = _values_all()
    deployment = one(all_docs, "Deployment")
    assert deployment["metadata"]["name"] == "queueworker-operator"
    assert deployment["spec"]["replicas"] == 3
    assert "strategy" not in deployment["spec"]  # peers roll one by one
    pod = deployment["spec"]["template"]["spec"]
    container = _container(all_docs)
    assert container["image"] == (f"registry.example.com/queueworker@"
                                  f"{values['image']['digest']}")
    assert container["args"] == ["operator", "--namespace=jobs", "--namespace=ml",
                                 "--peering=queueworker-ha",
                                 "--liveness=http://0.0.0.0:8081/healthz",
                                 "--metrics-port=9091", "--log-level=debug",
                                 "--refuse-privileged", "--verbose"]
    assert {"name": "TZ", "value": "UTC"} in container["env"]
    assert pod["serviceAccountName"] == "queueworker-operator-sa"
    assert pod["imagePullSecrets"] == [{"name": "registry-credentials"}]
    assert pod["priorityClassName"] == "system-cluster-critical"
    for key in ("nodeSelector", "tolerations", "affinity", "topologySpreadConstraints"):
        assert pod[key] == values[key], key
    assert deployment["spec"]["template"]["metadata"]["labels"]["team"] == "platform"
    service = one(all_docs, "Service")
    assert service["spec"]["ports"] == [{"name": "metrics", "port": 9191,
                                         "targetPort": "metrics", "protocol": "TCP"}]
    pdb = one(all_docs, "PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 2
    assert pdb["spec"]["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]


def test_peering_objects_follow_the_scope() -> None:
    cluster = render(sets=["replicaCount=2"], include_crds=True)
    assert "ClusterKopfPeering" in _validate_all(cluster)
    (peering,) = [d for d in cluster if d["kind"] in PEERING_KINDS]
    assert peering["kind"] == "ClusterKopfPeering"
    assert peering["metadata"]["name"] == "queueworker-operator"
    assert "--peering=queueworker-operator" in _container(cluster)["args"]
    assert one(cluster, "PodDisruptionBudget")["spec"]["minAvailable"] == 1
    namespaced = render(VALUES_ALL)
    peerings = by_kind(namespaced, "KopfPeering")
    assert {(p["metadata"]["namespace"], p["metadata"]["name"]) for p in peerings} == {
        ("jobs", "queueworker-ha"), ("ml", "queueworker-ha")}
    assert not by_kind(namespaced, "ClusterKopfPeering")


def test_monitors_select_the_right_targets(all_docs: list[dict[str, Any]]) -> None:
    sm = one(all_docs, "ServiceMonitor")
    assert sm["metadata"]["labels"]["release"] == "kps"
    service = one(all_docs, "Service")
    assert sm["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    (endpoint,) = sm["spec"]["endpoints"]
    assert endpoint["port"] == service["spec"]["ports"][0]["name"]
    # The operator's series carry their QueueWorker's namespace label (see
    # test_chart_e2e_kopf.py for what goes wrong without this).
    assert endpoint["honorLabels"] is True
    assert endpoint["relabelings"][0] == {"action": "replace", "targetLabel": "job",
                                          "replacement": "queueworker-operator"}
    assert endpoint["relabelings"][1]["targetLabel"] == "cluster"
    assert endpoint["metricRelabelings"][0]["action"] == "drop"
    pm = one(all_docs, "PodMonitor")
    assert pm["metadata"]["labels"]["release"] == "kps"
    assert pm["spec"]["namespaceSelector"] == {"matchNames": ["jobs", "ml", "batch"]}
    (pod_endpoint,) = pm["spec"]["podMetricsEndpoints"]
    assert pod_endpoint["relabelings"][0]["replacement"] == "queueworker-worker"
    # The worker pods the operator creates carry these labels.
    from queueworker.operator.cluster import deployment as worker_deployment

    default_pm = one(render(sets=["metrics.workerPodMonitor.enabled=true"]), "PodMonitor")
    selector = default_pm["spec"]["selector"]["matchLabels"]
    assert selector.items() <= worker_deployment.object_labels("emails").items()
    assert default_pm["spec"]["namespaceSelector"] == {"any": True}


def test_prometheus_rule_wraps_the_rules_file(all_docs: list[dict[str, Any]]) -> None:
    rule = one(all_docs, "PrometheusRule")
    assert rule["metadata"]["labels"]["release"] == "kps"
    shipped = {r["alert"]: r for g in rule["spec"]["groups"] for r in g["rules"]}
    source = {r["alert"]: r for r in alert_rules()}
    assert set(shipped) == set(source) - {"QueueWorkerSpecInvalid"}
    for name, r in shipped.items():
        assert r["expr"] == source[name]["expr"]
        assert r["annotations"] == source[name]["annotations"]
        assert r["labels"] == {**source[name]["labels"], "team": "platform"}
    # With default options the PrometheusRule is the file, unchanged.
    default = one(render(sets=["prometheusRule.enabled=true"]), "PrometheusRule")
    assert default["spec"] == load_rules()


def test_dashboards_ship_as_labelled_config_maps(all_docs: list[dict[str, Any]]) -> None:
    maps = by_kind(all_docs, "ConfigMap")
    assert len(maps) == len(DASHBOARDS) == 2
    for cm in maps:
        assert cm["metadata"]["namespace"] == "monitoring"
        assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert cm["metadata"]["annotations"] == {"grafana_folder": "Queues"}
        ((key, text),) = cm["data"].items()
        assert text == (CHART / "dashboards" / key).read_text(encoding="utf-8").rstrip("\n")
        json.loads(text)
    relabelled = render(sets=["dashboards.label=my_dashboards", "dashboards.labelValue=yes"])
    for cm in by_kind(relabelled, "ConfigMap"):
        assert cm["metadata"]["labels"]["my_dashboards"] == "yes"
        assert "grafana_dashboard" not in cm["metadata"]["labels"]
        assert cm["metadata"]["namespace"] == NAMESPACE
    assert not by_kind(render(sets=["dashboards.enabled=false"]), "ConfigMap")


def test_helm_test_pod_curls_the_metrics_service(default_docs: list[dict[str, Any]]) -> None:
    pod = one(default_docs, "Pod")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    service = one(default_docs, "Service")
    script = " ".join(pod["spec"]["containers"][0]["args"])
    assert f"http://{service['metadata']['name']}.{NAMESPACE}.svc:9090/metrics" in script
    assert "--fail" in script
    assert "queueworker_" in script
    assert pod["spec"]["restartPolicy"] == "Never"


def test_labels_follow_the_recommended_set(default_docs: list[dict[str, Any]]) -> None:
    for doc in default_docs:
        if doc["kind"] == "CustomResourceDefinition":
            continue
        labels = doc["metadata"]["labels"]
        assert labels["app.kubernetes.io/instance"] == RELEASE, doc["kind"]
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
        assert labels["helm.sh/chart"] == "queueworker-operator-0.1.0"


@pytest.mark.parametrize("case", ["defaults", "all-options", "two-replicas"])
def test_operator_cli_accepts_the_rendered_args(case: str) -> None:
    # The chart's command line must parse with the operator's real argument
    # parser, and the ports it names must be the ones the probes and Service use.
    from queueworker.operator.cli_operator import parser

    docs = {"defaults": lambda: render(), "all-options": lambda: render(VALUES_ALL),
            "two-replicas": lambda: render(sets=["replicaCount=2"])}[case]()
    container = _container(docs)
    assert container["args"][0] == "operator"
    args = parser().parse_args(container["args"][1:])
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert args.metrics_port == ports["metrics"]
    assert args.liveness == (f"http://0.0.0.0:{ports['health']}"
                             f"{container['livenessProbe']['httpGet']['path']}")
    replicas = one(docs, "Deployment")["spec"]["replicas"]
    if replicas > 1:
        peering = [d for d in docs if d["kind"] in PEERING_KINDS]
        assert args.peering == peering[0]["metadata"]["name"]
        assert not args.standalone
    else:
        assert args.standalone
        assert args.peering is None
    roles = by_kind(docs, "Role")
    assert sorted(args.namespace) == sorted(r["metadata"]["namespace"] for r in roles)
    assert args.all_namespaces == (not roles)


def test_privileged_templates_are_refused_unless_opted_out() -> None:
    # The operator creates pods for whoever may write QueueWorkers: refusing
    # privileged and host templates is the default, and the opt-out really drops it.
    from queueworker.operator.cli_operator import parser

    default = parser().parse_args(_container(render())["args"][1:])
    assert default.refuse_privileged is True
    opted_out = _container(render(sets=["operator.refusePrivileged=false"]))["args"]
    assert "--refuse-privileged" not in opted_out
    assert parser().parse_args(opted_out[1:]).refuse_privileged is False


def test_empty_intervals_fall_back_to_prometheus_defaults() -> None:
    docs = render(sets=["metrics.serviceMonitor.enabled=true",
                        "metrics.serviceMonitor.interval=", "metrics.serviceMonitor.scrapeTimeout=",
                        "metrics.workerPodMonitor.enabled=true",
                        "metrics.workerPodMonitor.interval="])
    (endpoint,) = one(docs, "ServiceMonitor")["spec"]["endpoints"]
    assert "interval" not in endpoint
    assert "scrapeTimeout" not in endpoint
    (pod_endpoint,) = one(docs, "PodMonitor")["spec"]["podMetricsEndpoints"]
    assert "interval" not in pod_endpoint
    assert [r for r in validate_monitoring(
        [d for d in docs if d["kind"] in MONITORING_KINDS]) if r["errors"]] == []


def test_a_shard_release_selects_its_queueworkers_with_its_own_peering() -> None:
    # One release per shard (docs/sharding.md): the shard and selector reach the CLI,
    # and the peering object is the shard's own, so the shards are all active.
    from queueworker.operator.cli_operator import parser

    docs = render(sets=["replicaCount=2", "operator.shard=team-a",
                        "operator.shardSelector=queueworker.dev/shard in (team-a\\,legacy)"],
                  include_crds=True)
    _validate_all(docs)
    (peering,) = [d for d in docs if d["kind"] in PEERING_KINDS]
    assert peering["metadata"]["name"] == "queueworker-operator-team-a"
    args = parser().parse_args(_container(docs)["args"][1:])
    assert args.shard == "team-a"
    assert args.shard_selector == "queueworker.dev/shard in (team-a,legacy)"
    assert args.peering == "queueworker-operator-team-a"
    assert not args.shard_all_pods
    gpu = render(sets=["operator.shard=gpus", "operator.shardAllPods=true"])
    assert parser().parse_args(_container(gpu)["args"][1:]).shard_all_pods
    unsharded = parser().parse_args(_container(render(sets=["replicaCount=2"]))["args"][1:])
    assert unsharded.shard is None
    assert unsharded.peering == "queueworker-operator"
    with pytest.raises(AssertionError, match="shard"):
        render(sets=["operator.shard=Team_A"])  # the schema refuses a bad label value
