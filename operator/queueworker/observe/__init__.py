"""The senses, shared by every world (operator, local mode, benchmarks).

Redis connections (connections.py), queue depth per key layout (layouts/, one
reader a file, all read in one round trip), and worker heartbeats: what the
engine's ``Observation`` is built from. Nothing here decides or acts.
"""
