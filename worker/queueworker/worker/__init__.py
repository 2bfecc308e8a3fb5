"""queueworker.worker: the Python worker runtime (jobs, broker, consumer, drain)."""
