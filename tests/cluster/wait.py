"""One wait loop for the suites against the real control plane."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def wait_until(what: str, check: Callable[[], Any], timeout: float = 30, log: Path | None = None,
               interval: float = 0.2) -> Any:
    """Poll `check` until it returns something true, and return that; on timeout fail
    naming `what`, with the tail of `log` (the operator's output) when given."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            tail = log.read_text()[-3000:] if log and log.exists() else ""
            raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{tail}")
        time.sleep(interval)
