"""The Grafana dashboards of the chart, built with Grafana's grafana-foundation-sdk.

charts/queueworker-operator/dashboards/*.json are generated from this package and
committed, so that the chart works without Python; tests/chart/test_chart_dashboards.py
regenerates them and fails when the committed files differ. Regenerate with
`python -m queueworker.operator.dashboards --write charts/queueworker-operator/dashboards`.

The SDK is a development dependency (the `dev` extra of pyproject.toml): nothing the
operator runs imports this package.
"""

from __future__ import annotations

from collections.abc import Callable

from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import Dashboard

from queueworker.operator.dashboards.queueworkers import build as build_queueworkers
from queueworker.operator.dashboards.workers import build as build_workers

# File stem under charts/queueworker-operator/dashboards/ -> the dashboard it holds.
BUILDERS: dict[str, Callable[[], Dashboard]] = {
    "queueworkers": build_queueworkers,
    "workers": build_workers,
}


def render(name: str) -> str:
    """The dashboard `name` (a key of BUILDERS) as the JSON text committed in the chart."""
    # Sorted keys and a fixed indent: the committed file changes only when a panel does.
    return JSONEncoder(sort_keys=True, indent=2).encode(BUILDERS[name]()) + "\n"
