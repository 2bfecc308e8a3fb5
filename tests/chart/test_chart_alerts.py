"""The alert rules: promtool checks them and runs their unit tests."""

from __future__ import annotations

from pathlib import Path

import yaml

from support.chart_tools import RULES_FILE, alert_rules, run, tool

HERE = Path(__file__).resolve().parent
RULE_TESTS = HERE / "alerts.test.yaml"

# What the issue asks the alerts to cover, by the metric each one reads.
REQUIRED = {
    "QueueWorkerBacklogGrowingAtMaxReplicas": "queueworker_max_replicas",
    "QueueWorkerOldestJobTooOld": "queueworker_queue_oldest_job_age_seconds",
    "QueueWorkerJobFailureRatioHigh": "queueworker_worker_jobs_failed_total",
    "QueueWorkerGPULimited": "queueworker_gpu_limited",
    "QueueWorkerRedisUnreachable": "queueworker_redis_up",
    "QueueWorkerOperatorDown": 'up{job="queueworker-operator"}',
    "QueueWorkerNotReconciling": "queueworker_last_poll_timestamp_seconds",
    "QueueWorkerWorkersCrashLooping": "kube_pod_container_status_restarts_total",
}


def test_promtool_check_rules() -> None:
    out = run([tool("promtool"), "check", "rules", str(RULES_FILE)]).stdout
    assert f"SUCCESS: {len(alert_rules())} rules found" in out


def test_promtool_check_rules_catches_a_bad_rule(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"groups": [{"name": "x", "rules": [
        {"alert": "Broken", "expr": "sum by (namespace (queueworker_redis_up)"}]}]}))
    proc = run([tool("promtool"), "check", "rules", str(bad)], check=False)
    assert proc.returncode != 0
    assert "parse error" in proc.stdout + proc.stderr


def test_promtool_unit_tests_pass() -> None:
    out = run([tool("promtool"), "test", "rules", str(RULE_TESTS)], cwd=HERE).stdout
    assert "SUCCESS" in out


def test_required_alerts_exist_with_severity_and_text() -> None:
    rules = {r["alert"]: r for r in alert_rules()}
    for name, metric in REQUIRED.items():
        assert name in rules, name
        assert metric in rules[name]["expr"], (name, metric)
    for rule in rules.values():
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        assert rule["annotations"]["summary"]
        assert rule["annotations"]["description"]
        assert rule.get("for"), f"{rule['alert']} fires on a single evaluation"


def test_every_alert_has_a_firing_unit_test() -> None:
    tests = yaml.safe_load(RULE_TESTS.read_text(encoding="utf-8"))
    firing = {case["alertname"] for t in tests["tests"] for case in t["alert_rule_test"]
              if case["exp_alerts"]}
    assert {r["alert"] for r in alert_rules()} <= firing
    (rule_file,) = tests["rule_files"]
    assert (HERE / rule_file).resolve() == RULES_FILE


def test_unit_tests_would_catch_a_broken_threshold(tmp_path: Path) -> None:
    # Proves the unit tests bite: the same tests against a rules file whose
    # Redis alert never fires must fail.
    broken = RULES_FILE.read_text(encoding="utf-8").replace(
        "max by (namespace, queueworker) (queueworker_redis_up) == 0",
        "max by (namespace, queueworker) (queueworker_redis_up) == 2")
    rules = tmp_path / "rules.yaml"
    rules.write_text(broken, encoding="utf-8")
    tests = yaml.safe_load(RULE_TESTS.read_text(encoding="utf-8"))
    tests["rule_files"] = [str(rules)]
    path = tmp_path / "tests.yaml"
    path.write_text(yaml.safe_dump(tests), encoding="utf-8")
    proc = run([tool("promtool"), "test", "rules", str(path)], check=False, cwd=tmp_path)
    assert proc.returncode != 0
    assert "QueueWorkerRedisUnreachable" in proc.stdout + proc.stderr
