"""Kubernetes edges: the API client, watch indexes, the Deployment builder, status conditions."""
