"""`scaling.minReplicasSchedules`: windows of a higher floor by cron and time zone,
checked the same way by the models and by the API server's CEL rules."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from queueworker.operator.validation import SpecError, parse_spec

BASE: dict[str, Any] = {
    "redis": {"url": "redis://r:6379/0"},
    "queues": [{"name": "q"}],
    "template": {"spec": {"containers": [{"name": "w", "image": "x"}]}},
}


def _spec(window: dict[str, Any], max_replicas: int = 10) -> Any:
    raw = copy.deepcopy(BASE)
    raw["scaling"] = {"maxReplicas": max_replicas, "minReplicasSchedules": [window]}
    return parse_spec(raw)


def test_a_window_parses_with_its_time_zone() -> None:
    s = _spec({"name": "morning", "start": "30 7 * * 1-5", "end": "0 19 * * 1-5",
               "timezone": "Europe/Berlin", "minReplicas": 4})
    (w,) = s.scaling.min_replicas_schedules
    assert (w.name, w.start, w.end, w.timezone, w.min_replicas) == (
        "morning", "30 7 * * 1-5", "0 19 * * 1-5", "Europe/Berlin", 4)
    assert _spec({"start": "0 8 * * *", "end": "0 9 * * *", "minReplicas": 1}).scaling \
        .min_replicas_schedules[0].timezone == "UTC"


@pytest.mark.parametrize(("window", "says"), [
    ({"start": "0 8 * *", "end": "0 9 * * *", "minReplicas": 1},
     "minReplicasSchedules[0]: start: '0 8 * *' is not a cron expression of five fields"),
    ({"start": "0 8 * * *", "end": "0 25 * * *", "minReplicas": 1},
     "minReplicasSchedules[0]: end: '0 25 * * *' is not a valid cron expression"),
    ({"start": "0 8 * * *", "end": "0 9 * * *", "timezone": "Mars/Olympus", "minReplicas": 1},
     "timezone: 'Mars/Olympus' is not a known IANA time zone"),
    ({"start": "0 8 * * *", "end": "0 9 * * *", "minReplicas": 11},
     "every minReplicasSchedules[].minReplicas must be <= maxReplicas"),
    ({"start": "0 8 * * *", "minReplicas": 1}, "minReplicasSchedules[0].end"),
])
def test_a_bad_window_is_named(window: dict[str, Any], says: str) -> None:
    with pytest.raises(SpecError) as exc:
        _spec(window)
    assert says in str(exc.value)
