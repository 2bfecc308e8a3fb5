"""queueworker.operator: API, scaling engine, GPU capacity, kopf handlers."""
