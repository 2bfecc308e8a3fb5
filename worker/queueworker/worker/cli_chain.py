"""``queueworker chain ID``: a chain's state (see cli_flows)."""

from __future__ import annotations

from queueworker.worker.cli_flows import chain_main as main

__all__ = ["main"]
