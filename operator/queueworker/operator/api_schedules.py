"""`scaling.minReplicasSchedules`: a higher floor at known times, by cron and time zone.

What KEDA users get from its cron scaler: from each `start` tick to the next
`end` tick (both read in `timezone`) the QueueWorker keeps at least
`minReplicas` replicas, so a queue whose pods take minutes to start is warm
before the morning rush. Outside every window `scaling.minReplicas` applies.
Cron expressions have five fields and follow Debian cron's rules across DST
changes (cronsim, as the worker's schedules do).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError
from pydantic import Field, model_validator
from pydantic_core import PydanticCustomError

from queueworker.operator.api_model import Model

MAX_SCHEDULES = 20


def cron_error(expr: str) -> str | None:
    """Why `expr` is not a five-field cron expression, or None."""
    if len(expr.split()) != 5:
        return f"{expr!r} is not a cron expression of five fields (minute hour day month weekday)"
    try:
        CronSim(expr, datetime(2026, 1, 1, tzinfo=UTC))
    except CronSimError as exc:
        return f"{expr!r} is not a valid cron expression ({exc})"
    return None


class MinReplicasSchedule(Model):
    """At least `minReplicas` replicas from each `start` tick to the next `end` tick."""

    name: Annotated[
        str | None,
        Field(max_length=63, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
              description="Shown in the engine's reason while the window is open."),
    ] = None
    start: Annotated[
        str,
        Field(min_length=1, max_length=100,
              description="Cron expression (five fields) of the window's start, "
              "e.g. '30 7 * * 1-5'."),
    ]
    end: Annotated[
        str,
        Field(min_length=1, max_length=100,
              description="Cron expression (five fields) of the window's end, "
              "e.g. '0 19 * * 1-5'."),
    ]
    timezone: Annotated[
        str,
        Field(min_length=1, max_length=64,
              description="IANA time zone the expressions are read in, e.g. Europe/Berlin."),
    ] = "UTC"
    min_replicas: Annotated[
        int, Field(ge=0, le=10000, description="Lower bound while the window is open.")
    ]

    @model_validator(mode="after")
    def _parse(self) -> MinReplicasSchedule:
        for field, expr in (("start", self.start), ("end", self.end)):
            why = cron_error(expr)
            if why:
                raise PydanticCustomError("cron", "{field}: {why}",
                                          {"field": field, "why": why})
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise PydanticCustomError(
                "timezone", "timezone: '{tz}' is not a known IANA time zone (e.g. Europe/Berlin)",
                {"tz": self.timezone}) from None
        return self
