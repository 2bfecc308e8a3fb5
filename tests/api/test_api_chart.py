"""The chart's optional API Deployment + Service: off by default; on, valid for Kubernetes,
its arguments accepted by the real `queueworker api` parser, its keys mounted from the
Secret, and refused with a clear message without Redis or keys."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from queueworker.api.cli import parser

from support.chart_tools import KUBE_VERSION, VALUES_ALL, by_kind, helm, render, template_args

pytestmark = pytest.mark.slow  # helm runs: a few seconds


def _api_on(tmp_path: Path) -> Path:
    values = yaml.safe_load(VALUES_ALL.read_text(encoding="utf-8"))
    values["api"]["enabled"] = True
    path = tmp_path / "api.yaml"
    path.write_text(yaml.safe_dump(values), encoding="utf-8")
    return path


def _api_docs(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [d for d in docs
            if d["metadata"].get("labels", {}).get("app.kubernetes.io/component") == "api"]


def test_off_by_default() -> None:
    assert _api_docs(render()) == []


def test_on_it_is_a_valid_deployment_and_service(tmp_path: Path) -> None:
    docs = _api_docs(render(_api_on(tmp_path)))
    assert sorted(d["kind"] for d in docs) == ["Deployment", "Service"]
    for doc in docs:
        kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)
    deployment, = by_kind(docs, "Deployment")
    service, = by_kind(docs, "Service")
    pod = deployment["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    container, = pod["containers"]
    args = container["args"]
    assert args[0] == "api"
    parsed = parser().parse_args(args[1:])
    assert (parsed.port, parsed.rate_limit, parsed.queues) == (8080, "10/minute", "audio,default")
    assert parsed.jwt_secret_file == "/etc/queueworker/jwt/hs256"
    assert parsed.jwt_public_key_file == "/etc/queueworker/jwt/rs256.pem"
    assert {"name": "jwt", "secret": {"secretName": "queueworker-api-jwt"}} in pod["volumes"]
    env = {e["name"]: e for e in container["env"]}
    assert env["QUEUEWORKER_REDIS_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "redis-credentials", "key": "url"}
    assert env["QUEUEWORKER_PREFIX"]["value"] == "jobs"
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert service["spec"]["ports"][0]["targetPort"] == "http"


@pytest.mark.parametrize(("sets", "words"), [
    (["api.enabled=true", "api.jwt.secretName=s", "api.jwt.hs256Key=k"], "api.redis.url"),
    (["api.enabled=true", "api.redis.url=redis://r:6379/0"], "api.jwt.secretName"),
    (["api.enabled=true", "api.rateLimit=ten"], "rateLimit"),
])
def test_a_setup_that_cannot_work_is_refused(sets: list[str], words: str) -> None:
    proc = helm(*template_args(sets=sets), check=False)
    assert proc.returncode != 0
    assert words in proc.stderr, proc.stderr


def test_lint_strict_with_the_api_on(tmp_path: Path) -> None:
    from support.chart_tools import CHART

    out = helm("lint", "--strict", str(CHART), "-f", str(_api_on(tmp_path))).stdout
    assert "1 chart(s) linted, 0 chart(s) failed" in out
