"""queueworker.operator: the QueueWorker contract (api, validation, crd, metrics) and the kopf controller."""
