"""`helm lint --strict` and the values schema, with the real helm 4 binary."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
import yaml

from support.chart_tools import CHART, ROOT, VALUES_ALL, helm, run, template_args, tool

HERE = Path(__file__).resolve().parent


def test_helm_is_helm_4() -> None:
    version = helm("version", "--short").stdout.strip()
    assert version.startswith("v4."), version


@pytest.mark.parametrize("values", [None, VALUES_ALL], ids=["defaults", "all-options"])
def test_lint_strict(values: Path | None) -> None:
    args = ["lint", "--strict", str(CHART)]
    if values:
        args += ["-f", str(values)]
    out = helm(*args).stdout
    assert "1 chart(s) linted, 0 chart(s) failed" in out


def test_chart_metadata() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text(encoding="utf-8"))
    assert chart["apiVersion"] == "v2"
    assert chart["name"] == "queueworker-operator"
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    # The image tag defaults to appVersion: keep it the package's version.
    assert f'version = "{chart["appVersion"]}"' in pyproject
    for required in ("values.yaml", "values.schema.json", "templates/NOTES.txt",
                     "templates/tests/test-metrics.yaml", "crds/queueworker.yaml",
                     "crds/kopf-peering.yaml", "README.md"):
        assert (CHART / required).is_file(), required


def test_schema_accepts_the_defaults_and_every_option() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text(encoding="utf-8"))
    assert schema["additionalProperties"] is False
    defaults = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))
    everything = yaml.safe_load(VALUES_ALL.read_text(encoding="utf-8"))
    # Every key of values.yaml is described by the schema, and the all-options
    # file sets every top-level key.
    assert set(defaults) <= set(schema["properties"])
    assert set(defaults) <= set(everything)


BAD_VALUES = [
    # (values, words the error must name)
    ({"replicaCount": "two"}, ["replicaCount", "integer"]),
    ({"replicaCount": -1}, ["replicaCount"]),
    ({"metrics": {"serviceMonitor": {"enabeld": True}}}, ["serviceMonitor", "enabeld"]),
    ({"metrics": {"port": 70000}}, ["metrics/port"]),
    ({"watchNamespaces": ["Not_A_Namespace"]}, ["watchNamespaces"]),
    ({"image": {"pullPolicy": "Sometimes"}}, ["pullPolicy"]),
    ({"image": {"digest": "latest"}}, ["digest"]),
    ({"dashboards": {"labelValue": 1}}, ["labelValue", "string"]),
    ({"unknownTopLevel": True}, ["unknownTopLevel"]),
    ({"health": {"path": "healthz"}}, ["health/path"]),
    ({"metrics": {"serviceMonitor": {"interval": "thirty seconds"}}}, ["interval"]),
]


@pytest.mark.parametrize(("values", "words"), BAD_VALUES,
                         ids=[str(v) for v, _ in BAD_VALUES])
def test_schema_rejects_bad_values(tmp_path: Path, values: dict[str, object],
                                   words: list[str]) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(values), encoding="utf-8")
    proc = helm(*template_args(path), check=False)
    assert proc.returncode != 0, f"accepted {values}"
    for word in words:
        assert word in proc.stderr, (word, proc.stderr)


def test_kubectl_is_there() -> None:
    # The kubectl test needs the binary from scripts/ensure-helm.sh.
    assert Path(tool("kubectl")).is_file()


def _documented_sets(text: str) -> list[str]:
    return re.findall(r"--set\s+(\S+)", text)


@pytest.mark.parametrize("readme", ["README.md", "charts/queueworker-operator/README.md"])
def test_documented_helm_commands_render(readme: str) -> None:
    # The --set flags the READMEs show are real values the schema accepts and
    # that turn on what they say (ServiceMonitor, PodMonitor, PrometheusRule).
    text = (ROOT / readme).read_text(encoding="utf-8")
    section = text[text.index("helm install"):] if readme == "README.md" else text
    sets = _documented_sets(section)
    assert len(sets) >= 6, sets
    docs = [d for d in yaml.safe_load_all(helm(*template_args(sets=sets)).stdout) if d]
    kinds = {d["kind"] for d in docs}
    assert {"ServiceMonitor", "PodMonitor", "PrometheusRule"} <= kinds
    for doc in docs:
        if doc["kind"] in {"ServiceMonitor", "PodMonitor", "PrometheusRule"}:
            assert doc["metadata"]["labels"]["release"] == "kps"
    assert "## Install with Helm" in (ROOT / "README.md").read_text(encoding="utf-8")


def _notes(*args: str) -> str:
    out = helm("install", "qw", str(CHART), "--namespace", "qw-system", "--dry-run=client",
               *args).stdout
    return out[out.index("NOTES:"):]


def test_notes_follow_the_values() -> None:
    notes = _notes()
    assert "installed as qw-queueworker-operator in namespace qw-system" in notes
    assert "Watching: all namespaces." in notes
    assert "Replicas: 1." in notes
    assert "helm test qw -n qw-system" in notes
    assert "No ServiceMonitor" in notes
    notes = _notes("-f", str(VALUES_ALL))
    assert "Watching: namespaces jobs, ml." in notes
    assert 'kopf peering "queueworker-ha"' in notes
    assert 'ServiceMonitor created (job="queueworker-operator")' in notes
    assert 'PodMonitor for the workers created (job="queueworker-worker"' in notes
    assert "PrometheusRule with the queueworker alerts created" in notes


def test_chart_readme_worker_snippet_is_a_valid_pod_template() -> None:
    # The snippet must pass the CRD, parse with the worker's real CLI, and
    # name the port the PodMonitor scrapes.
    from queueworker.worker.cli import parser as worker_parser

    from support.apiserver import admit, load_crd

    text = (CHART / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```yaml\n(containers:.*?)```", text, re.S)
    assert block, "no pod template snippet in the chart README"
    containers = yaml.safe_load(block.group(1))["containers"]
    example = yaml.safe_load((ROOT / "examples" / "native-worker.yaml").read_text())
    example["spec"]["template"]["spec"]["containers"] = containers
    assert admit(load_crd(), example)[1] == []
    (container,) = containers
    args = worker_parser().parse_args(container["args"][2:])
    values = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))
    (port,) = container["ports"]
    assert port["name"] == values["metrics"]["workerPodMonitor"]["portName"]
    assert port["containerPort"] == args.metrics_port


def test_ensure_helm_is_quick_and_quiet_when_installed() -> None:
    # `make setup` runs it every time: with the tools in place it must do nothing.
    started = time.monotonic()
    proc = run(["bash", "scripts/ensure-helm.sh"], timeout=60)
    assert time.monotonic() - started < 10
    assert proc.stdout == ""
    assert proc.stderr == ""
    assert run([tool("kubectl"), "version", "--client"]).stdout.startswith("Client Version: v1.")
