"""The kopf controller's per-QueueWorker loop: spec -> observe -> decide -> act -> report."""
