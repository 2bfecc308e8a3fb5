"""The scaling engine: observations in, a decision out, no I/O.

The operator, the local mode and the simulator all call `decide` (see
types.py for the data it takes and returns)."""
