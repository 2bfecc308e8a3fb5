"""Queue depth readers, one per Redis key layout, all read in one round trip.

Call `read_depths` (asyncio) or `read_depths_sync`: one answer per queue, a
QueueDepth or a DepthError. What a poll may use of those answers is
observe/depths.py. See base.py for the reader interface and each layout's
module for the keys it reads and where the layout is documented.
"""

from queueworker.observe.layouts.base import DepthError
from queueworker.observe.layouts.read import READERS, read_depths, read_depths_sync

__all__ = ["READERS", "DepthError", "read_depths", "read_depths_sync"]
