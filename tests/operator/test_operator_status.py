"""Conditions follow the Kubernetes convention; secrets never leave in text."""

from __future__ import annotations

from queueworker.common.redact import redact
from queueworker.operator.cluster import status as st


def test_transition_time_moves_only_when_status_changes() -> None:
    conds = st.with_all_types([], generation=1, now="2026-01-01T00:00:00Z")
    assert [c["type"] for c in conds] == ["Ready", "SpecValid", "RedisReachable", "GPULimited",
                                          "Scaling"]
    assert all(c["status"] == "Unknown" for c in conds)
    conds = st.set_condition(conds, "Ready", "True", "Reconciled", generation=2,
                             now="2026-01-01T00:01:00Z")
    ready = st.get_condition(conds, "Ready")
    assert ready is not None
    assert ready["lastTransitionTime"] == "2026-01-01T00:01:00Z"
    # Same status, new reason/message/generation: no transition.
    conds = st.set_condition(conds, "Ready", "True", "StillFine", "msg", generation=3,
                             now="2026-01-01T00:02:00Z")
    ready = st.get_condition(conds, "Ready")
    assert ready is not None
    assert ready["lastTransitionTime"] == "2026-01-01T00:01:00Z"
    assert (ready["reason"], ready["message"], ready["observedGeneration"]) == (
        "StillFine", "msg", 3)
    conds = st.set_condition(conds, "Ready", "False", "Broken", now="2026-01-01T00:03:00Z")
    ready = st.get_condition(conds, "Ready")
    assert ready is not None
    assert ready["lastTransitionTime"] == "2026-01-01T00:03:00Z"


def test_redact_urls_and_given_secrets() -> None:
    text = "Error connecting to redis://alice:hunter22@redis:6379/0 (token abcdef)"
    out = redact(text, ["abcdef"])
    assert "hunter22" not in out
    assert "abcdef" not in out
    assert "redis://alice:***@redis:6379/0" in out
    # A secret the caller names is removed wherever it appears.
    assert redact("AUTH failed for s3cr3t-value", ["s3cr3t-value"]) == "AUTH failed for ***"
