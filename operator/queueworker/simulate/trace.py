"""Job traces for `queueworker simulate`: CSV with arrival, run seconds, queue.

The header row names the columns (`arrival,run_seconds,queue`; `queue` may be
left out, then every job goes to the spec's first queue). Arrival is seconds
from the start of the trace. Lines starting with '#' are comments.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

from queueworker.common.errors import QueueworkerError


class TraceError(QueueworkerError, ValueError):
    """A trace that cannot be replayed; the message names the line and the field."""


@dataclass(frozen=True)
class TraceJob:
    arrival: float
    run_seconds: float
    queue: str


def _number(text: str, where: str, field: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise TraceError(f"{where}: {field} must be a number of seconds, got {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise TraceError(f"{where}: {field} must be >= 0, got {text!r}")
    return value


def load(path: str | Path, default_queue: str) -> list[TraceJob]:
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise TraceError(f"{p}: cannot read the trace ({exc.strerror})") from None
    rows = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    if not rows:
        raise TraceError(f"{p}: the trace is empty (want a header arrival,run_seconds,queue)")
    reader = csv.DictReader(rows)
    fields = [f.strip() for f in reader.fieldnames or []]
    missing = [f for f in ("arrival", "run_seconds") if f not in fields]
    if missing:
        raise TraceError(
            f"{p}: header must name arrival,run_seconds[,queue]; missing {', '.join(missing)} "
            f"(got {','.join(fields)})"
        )
    jobs: list[TraceJob] = []
    for i, row in enumerate(reader, start=2):
        row = {(k or "").strip(): (v or "").strip() for k, v in row.items()}
        where = f"{p}:{i}"
        jobs.append(
            TraceJob(
                arrival=_number(row.get("arrival", ""), where, "arrival"),
                run_seconds=_number(row.get("run_seconds", ""), where, "run_seconds"),
                queue=row.get("queue") or default_queue,
            )
        )
    jobs.sort(key=lambda j: j.arrival)
    return jobs
