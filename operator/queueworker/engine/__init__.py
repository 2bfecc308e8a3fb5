"""The scaling engine: observations in, a decision out, no I/O.

The operator, the local mode and the simulator all call
``decide(spec, observation, memory) -> Decision`` (types.py has the data it
takes and returns) and keep ``Decision.memory`` for the next call (the
operator persists it in status.engineMemory). The inputs come from:

- ``queueworker.observe.depths.read`` / ``read_sync`` for ``Observation.queues``
  (with ``.error`` when a queue cannot be read);
- ``queueworker.engine.capacity.capacities`` for ``Observation.gpu``.
"""

from queueworker.engine.decide import decide
from queueworker.engine.types import (
    Decision,
    GPUCapacity,
    Observation,
    PodState,
    QueueDepth,
)

__all__ = ["Decision", "GPUCapacity", "Observation", "PodState", "QueueDepth", "decide"]
