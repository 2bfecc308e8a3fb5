"""``queueworker batch ID | list | cancel ID`` (see cli_flows)."""

from __future__ import annotations

from queueworker.worker.cli_flows import batch_main as main

__all__ = ["main"]
