"""Soak jobs: run a few milliseconds; those marked `fail` raise (one try, so they
go straight to the failed store and exercise its retention)."""

from __future__ import annotations

import time
from typing import Any


def handle(payload: dict[str, Any]) -> None:
    time.sleep(float(payload.get("seconds", 0.005)))
    if payload.get("fail"):
        raise RuntimeError("soak: planned failure")
