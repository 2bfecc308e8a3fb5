"""queueworker.operator: the QueueWorker contract and the kopf controller.

The contract: api (models), validation, crd, reference, podsecurity, metrics.
The controller: handlers (kopf registrations), controller/ (the per-QueueWorker
tick) and cluster/ (the Kubernetes client, watch indexes, Deployment builder).
"""
