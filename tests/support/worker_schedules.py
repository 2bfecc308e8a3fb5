"""Schedules the schedule tests' workers register (`--schedules support.worker_schedules:SIM`).

Their jobs go to the queue ``ticks``, which the test workers do not consume, so a
test reads every job ever enqueued from that one list."""

from __future__ import annotations

from queueworker.worker.schedules import Schedule

SIM = [
    Schedule("sim-every7", queue="ticks", every=7, missed="all"),
    Schedule("sim-minutely", queue="ticks", cron="* * * * *", missed="all"),
    Schedule("sim-ny", queue="ticks", cron="*/2 * * * *", tz="America/New_York", missed="all"),
]

REAL = [Schedule("real-half-second", queue="ticks", every=0.5, missed="all")]
