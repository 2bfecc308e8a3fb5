"""The real tools the chart tests drive: helm, kubectl, promtool, node, prometheus.

Every tool is installed by `make setup` (scripts/ensure-tools.sh and
scripts/ensure-helm.sh). A missing tool is an error, never a skip: the tests
would otherwise pass without checking anything.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "queueworker-operator"
TOOLS_BIN = ROOT / ".tools" / "bin"
MONITORING_MODELS = ROOT / ".tools" / "prometheus-operator-models" / "node_modules"
VALIDATE_MONITORING = ROOT / "tests" / "chart" / "validate_monitoring.mjs"
RULES_FILE = CHART / "alerts" / "queueworker-rules.yaml"
DASHBOARDS = sorted((CHART / "dashboards").glob("*.json"))

# The Kubernetes version the rendered manifests are validated against.
KUBE_VERSION = "1.31"
RELEASE = "qw"
NAMESPACE = "qw-system"


def tool(name: str) -> str:
    """Path of a tool from .tools/bin or PATH; fails loudly when it is missing."""
    local = TOOLS_BIN / name
    if local.is_file():
        return str(local)
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} not found: run `make setup` (scripts/ensure-helm.sh, "
                           "scripts/ensure-tools.sh)")
    return found


def run(args: Sequence[str], *, check: bool = True, timeout: float = 120,
        cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(args), cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(args)} exited {proc.returncode}\n"
                             f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return run([tool("helm"), *args], check=check)


def template_args(*values: Path | str, sets: Sequence[str] = (),
                  include_crds: bool = False) -> list[str]:
    args = ["template", RELEASE, str(CHART), "--namespace", NAMESPACE]
    if include_crds:
        args.append("--include-crds")
    for v in values:
        args += ["-f", str(v)]
    for s in sets:
        args += ["--set", s]
    return args


def render(*values: Path | str, sets: Sequence[str] = (),
           include_crds: bool = False) -> list[dict[str, Any]]:
    """`helm template` the chart; the manifests as dicts (empty documents dropped)."""
    out = helm(*template_args(*values, sets=sets, include_crds=include_crds)).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def one(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = by_kind(docs, kind)
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]


def validate_monitoring(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Check ServiceMonitor/PodMonitor/PrometheusRule documents with the
    prometheus-operator API's JSON schemas (npm @kubernetes-models/prometheus-operator)."""
    if not MONITORING_MODELS.is_dir():
        raise RuntimeError("prometheus-operator models missing: run `make setup` "
                           "(scripts/ensure-helm.sh)")
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
        json.dump(docs, fh)
        path = fh.name
    try:
        out = run([tool("node"), str(VALIDATE_MONITORING), str(MONITORING_MODELS), path]).stdout
    finally:
        Path(path).unlink()
    results: list[dict[str, Any]] = json.loads(out)
    return results


def load_rules() -> dict[str, Any]:
    with open(RULES_FILE, encoding="utf-8") as fh:
        rules: dict[str, Any] = yaml.safe_load(fh)
    return rules


def alert_rules() -> list[dict[str, Any]]:
    return [r for g in load_rules()["groups"] for r in g["rules"] if "alert" in r]


def load_dashboard(path: Path) -> dict[str, Any]:
    with open(path, encoding="utf-8") as fh:
        doc: dict[str, Any] = json.load(fh)
    return doc


def dashboard_targets(doc: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, PromQL) of every query in a dashboard, rows' panels included."""
    out: list[tuple[str, str]] = []
    panels = list(doc.get("panels", []))
    while panels:
        panel = panels.pop(0)
        panels += panel.get("panels", [])
        for target in panel.get("targets", []):
            out.append((panel["title"], target["expr"]))
    return out


# What Grafana puts in place of its variables, so that the query is plain PromQL.
# "All" for the template variables is ".*" (their allValue), which also
# matches a series without the label.
GRAFANA_SUBSTITUTIONS = {
    "$__rate_interval": "1m",
    "$__interval": "30s",
    "$__range": "5m",
    "$namespace": ".*",
    "$queueworker": ".*",
    "$queue": ".*",
}


def grafana_to_promql(expr: str) -> str:
    # Longest names first: $__rate_interval before $__range and so on.
    for var in sorted(GRAFANA_SUBSTITUTIONS, key=len, reverse=True):
        expr = expr.replace(var, GRAFANA_SUBSTITUTIONS[var])
    assert "$" not in expr, f"unknown Grafana variable left in {expr!r}"
    return expr


LABEL_VALUES = re.compile(r"^label_values\((?P<selector>.+),\s*(?P<label>[a-zA-Z_]+)\)$")


def variable_queries(doc: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """Template variable name -> (series selector, label) of its label_values() query."""
    out: dict[str, tuple[str, str]] = {}
    for var in doc["templating"]["list"]:
        if var["type"] != "query":
            continue
        match = LABEL_VALUES.match(var["query"]["query"])
        assert match, f"variable {var['name']}: not a label_values() query"
        out[var["name"]] = (grafana_to_promql(match["selector"]), match["label"])
    return out

# Every option of the chart switched on (tests/chart/values-all.yaml).
VALUES_ALL = Path(__file__).resolve().parents[1] / "chart" / "values-all.yaml"
