"""`queueworker simulate --compare`: one trace through ours, KEDA+HPA (30 s
grace and the grace ours gets) and Horizon, printed as one table.

A user checks a spec on their own trace this way before trusting it: the same
jobs, the same pod start, the same seed for every policy.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from queueworker.simulate import visibility

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
        who = r.policy if r.layout in ("native", "-") else f"{r.policy} [{r.layout}]"
        out.append((who, f"{r.wait_p95:.1f}", f"{r.wait_mean:.1f}",
                    f"{r.worker_seconds:,.0f}", vs, str(r.interrupted), str(r.unfinished),
                    str(r.scale_events), str(r.never_ran_pods), f"{r.never_ran_seconds:,.0f}"))
    return out


def _aligned(header: tuple[str, ...], body: list[tuple[str, ...]]) -> list[str]:
    """Rows as aligned text (first column left, numbers right)."""
    every = [header, *body]
    widths = [max(len(row[i]) for row in every) for i in range(len(header))]

    def line(row: tuple[str, ...]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                         for i, (c, w) in enumerate(zip(row, widths, strict=True)))

    return [line(header), line(tuple("-" * w for w in widths)), *map(line, body)]


def table(results: Sequence[Result]) -> str:
    """The comparison as aligned text (first column left, numbers right)."""
    jobs = results[0].jobs if results else 0
    notes = [f"{jobs} jobs; worker-s: pod time from scheduled to gone (starting, idle, "
             "terminating included; horizon: maxProcesses for the whole run)"]
    return "\n".join([*_aligned(HEADER, rows(results)), *notes])


LAYOUT_HEADER = ("layout", "running jobs", "busy pods", "wait p95 s", "wait mean s", "worker-s",
                 "x native", "interrupted", "unfinished", "scale events")


def layouts_table(results: Sequence[Result]) -> str:
    """`--layout a,b,...`: one row per layout, what ours saw and what it cost."""
    base = next((r for r in results if r.layout == "native"), None)
    body: list[tuple[str, ...]] = []
    for r in results:
        v = visibility.get(r.layout)
        vs = (f"{r.worker_seconds / base.worker_seconds:.2f}"
              if base is not None and base.worker_seconds > 0 else "-")
        busy = v.busy + (" (confirmed)" if v.confirmed else "")
        body.append((r.layout, v.running, busy, f"{r.wait_p95:.1f}", f"{r.wait_mean:.1f}",
                     f"{r.worker_seconds:,.0f}", vs, str(r.interrupted), str(r.unfinished),
                     str(r.scale_events)))
    jobs = results[0].jobs if results else 0
    notes = [f"{jobs} jobs, policy {results[0].policy if results else 'ours'}; "
             "interrupted: jobs a scale-down cut (run again); the layouts: "
             "`simulate/visibility.py`"]
    return "\n".join([*_aligned(LAYOUT_HEADER, body), *notes])
