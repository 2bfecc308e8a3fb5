"""The scaling engine: observations in, a decision out, no I/O.

The operator, the local mode and the simulator all call `decide` (see
types.py for the data it takes and returns)."""

from queueworker.operator.engine.decide import decide
from queueworker.operator.engine.types import (
    Decision,
    GPUCapacity,
    Observation,
    PodState,
    QueueDepth,
)

__all__ = ["Decision", "GPUCapacity", "Observation", "PodState", "QueueDepth", "decide"]
