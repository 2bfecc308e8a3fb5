"""`queueworker simulate --compare`: one trace through ours, KEDA+HPA (30 s
grace and the grace ours gets) and Horizon, printed as one table.

A user checks a spec on their own trace this way before trusting it: the same
jobs, the same pod start, the same seed for every policy.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from queueworker.simulate.cli import Result

COMPARED = ("ours", "keda-hpa", "keda-hpa-same-grace", "horizon")

HEADER = ("policy", "wait p95 s", "wait mean s", "worker-s", "x ours", "interrupted",
          "unfinished", "scale events", "never ran: pods", "pod-s")


def rows(results: Sequence[Result]) -> list[tuple[str, ...]]:
    ours = next((r for r in results if r.policy == "ours"), None)
    out: list[tuple[str, ...]] = []
    for r in results:
        vs = (f"{r.worker_seconds / ours.worker_seconds:.2f}"
              if ours is not None and ours.worker_seconds > 0 else "-")
        out.append((r.policy, f"{r.wait_p95:.1f}", f"{r.wait_mean:.1f}",
                    f"{r.worker_seconds:,.0f}", vs, str(r.interrupted), str(r.unfinished),
                    str(r.scale_events), str(r.never_ran_pods), f"{r.never_ran_seconds:,.0f}"))
    return out


def table(results: Sequence[Result]) -> str:
    """The comparison as aligned text (first column left, numbers right)."""
    body = [HEADER, *rows(results)]
    widths = [max(len(row[i]) for row in body) for i in range(len(HEADER))]

    def line(row: tuple[str, ...]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                         for i, (c, w) in enumerate(zip(row, widths, strict=True)))

    jobs = results[0].jobs if results else 0
    notes = [f"{jobs} jobs; worker-s: pod time from scheduled to gone (starting, idle, "
             "terminating included; horizon: maxProcesses for the whole run)"]
    return "\n".join([line(body[0]), line(tuple("-" * w for w in widths)),
                      *map(line, body[1:]), *notes])
