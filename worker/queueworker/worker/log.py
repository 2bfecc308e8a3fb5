"""The worker's logger: logfmt lines through the one helper (queueworker.common.log).

``event("job.failed", id=..., queue=...)`` is ``log_event`` bound to the
``queueworker.worker`` logger, so every worker module logs the same way the
operator and local mode do.
"""

from __future__ import annotations

import logging
from typing import Any

from queueworker.common import log as common_log

logger = logging.getLogger("queueworker.worker")


def setup(level: str = "info") -> None:
    common_log.setup(logger, level)


def event(name: str, level: int = logging.INFO, **fields: Any) -> None:
    common_log.log_event(logger, name, level, **fields)
