"""The chart rendered once per module: with defaults, and with every option on."""

from __future__ import annotations

from typing import Any

import pytest

from support.chart_tools import VALUES_ALL, render


@pytest.fixture(scope="module")
def default_docs() -> list[dict[str, Any]]:
    return render(include_crds=True)


@pytest.fixture(scope="module")
def all_docs() -> list[dict[str, Any]]:
    return render(VALUES_ALL, include_crds=True)
