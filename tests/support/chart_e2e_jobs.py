"""Job handler for the metrics end-to-end test: sleeps, and fails when asked."""

from __future__ import annotations

import time
from typing import Any


def handle(payload: dict[str, Any]) -> None:
    time.sleep(float(payload.get("seconds", 0.05)))
    if payload.get("fail"):
        # A real exception, so the runtime retries it and then moves it to the failed store.
        raise RuntimeError("e2e: this job fails on purpose")
