"""What a person watching local mode sees: a live terminal view, or plain lines.

Both render the same `Snapshot`, which the runner fills after every poll. The
live view (rich) redraws in place; the plain view (``--no-ui``, CI, pipes)
prints one line per scale change and a status line every few seconds.
"""

from __future__ import annotations

import sys
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Protocol, TextIO

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from queueworker.engine.types import QueueDepth


@dataclass(frozen=True)
class ScaleRecord:
    at: float  # epoch
    before: int
    after: int
    direction: str
    reason: str


@dataclass
class Snapshot:
    name: str
    redis: str  # display form, no password
    started_at: float  # epoch
    queues: tuple[QueueDepth, ...] | None = None
    error: str | None = None
    desired: int = 0
    running: int = 0
    ready: int = 0
    busy: int = 0
    unknown: int = 0  # running replicas whose busy state nothing reports (foreign workers)
    stopping: int = 0
    done: int = 0  # completed since local mode started
    failed: int = 0  # jobs failed for good since local mode started
    retried: int = 0  # failed attempts that were retried
    rate: float = 0.0  # completions per second, recent
    worker_seconds: float = 0.0
    crashed: int = 0  # replicas that exited without being asked (replaced)
    problem: str | None = None  # why replicas cannot start, when they cannot
    decisions: deque[ScaleRecord] = field(default_factory=lambda: deque(maxlen=8))
    last_reason: str = ""
    draining: bool = False

    @property
    def backlog(self) -> int:
        return sum(q.waiting + q.in_flight for q in self.queues or ())

    @property
    def oldest(self) -> float | None:
        ages = [q.oldest_age_seconds for q in self.queues or () if q.oldest_age_seconds]
        return max(ages) if ages else None


class View(Protocol):
    def __enter__(self) -> View: ...
    def __exit__(self, *exc: object) -> None: ...
    def update(self, snap: Snapshot) -> None: ...
    def note(self, text: str) -> None: ...


def _age(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.1f}s"


def _admin(q: QueueDepth) -> str:
    """A queue's admin state in a few words: paused (no demand), its next schedule tick."""
    parts = ["paused"] if q.paused else []
    t = q.schedule_due_in
    if t is not None:
        parts.append(f"tick in {t:.0f}s" if t >= 0 else f"tick due {-t:.0f}s ago")
    return ", ".join(parts)


def render(snap: Snapshot) -> Group:
    elapsed = time.time() - snap.started_at
    head = Text.assemble(
        ("queueworker local ", "bold"), (snap.name, "bold cyan"),
        f"  redis {snap.redis}  ", (f"{elapsed:5.0f}s", "dim"),
        ("  DRAINING" if snap.draining else "", "bold yellow"),
    )
    queues = Table(expand=True, box=None)
    for col in ("queue", "layout", "waiting", "in flight", "delayed", "oldest"):
        queues.add_column(col, justify="left" if col in ("queue", "layout") else "right")
    if snap.queues is None:
        queues.add_row(Text(f"queues unreadable: {snap.error}", "red"), "", "", "", "", "")
    else:
        for q in snap.queues:
            admin = _admin(q)
            name = Text.assemble(q.name, (f" ({admin})" if admin else "",
                                          "bold yellow" if q.paused else "dim"))
            queues.add_row(name, q.layout, str(q.waiting), str(q.in_flight), str(q.delayed),
                           _age(q.oldest_age_seconds))
    replicas = Text.assemble(
        "replicas  desired ", (str(snap.desired), "bold"),
        "  running ", (str(snap.running), "bold"),
        "  ready ", str(snap.ready), "  busy ", (str(snap.busy), "bold green"),
        (f" (+{snap.unknown} unknown)" if snap.unknown else "", "yellow"),
        "  stopping ", str(snap.stopping),
        "    jobs done ", (str(snap.done), "bold"), f"  ({snap.rate:.1f}/s)",
        "  retried ", str(snap.retried),
        "  failed ", (str(snap.failed), "bold red" if snap.failed else ""),
        f"  worker-seconds {snap.worker_seconds:.0f}",
        (f"  crashed {snap.crashed}" if snap.crashed else "", "bold red"),
    )
    decisions = Table(expand=True, box=None, show_header=True)
    decisions.add_column("time", width=8)
    decisions.add_column("scale", width=10)
    decisions.add_column("reason", ratio=1)
    for rec in reversed(snap.decisions):
        arrow = "green" if rec.direction == "up" else "yellow"
        decisions.add_row(time.strftime("%H:%M:%S", time.localtime(rec.at)),
                          Text(f"{rec.before} -> {rec.after}", arrow), rec.reason)
    if not snap.decisions:
        decisions.add_row("", "", Text(snap.last_reason or "waiting for the first poll", "dim"))
    problem = Text(f"workers cannot start: {snap.problem}", "bold red") if snap.problem else ""
    return Group(
        head,
        problem,
        Panel(queues, title="queues", title_align="left"),
        replicas,
        Panel(decisions, title="recent scale decisions", title_align="left"),
    )


class LiveView:
    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console()
        self._live: Live | None = None

    def __enter__(self) -> LiveView:
        self._live = Live(console=self.console, refresh_per_second=4, transient=False)
        self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.__exit__(None, None, None)
            self._live = None

    def update(self, snap: Snapshot) -> None:
        if self._live is not None:
            self._live.update(render(snap))

    def note(self, text: str) -> None:
        self.console.print(text)


class PlainView:
    """One line per scale change, a status line every `every` seconds."""

    def __init__(self, out: TextIO | None = None, every: float = 5.0) -> None:
        self.out = out or sys.stdout
        self.every = every
        self._last_status: float | None = None  # the first update prints one at once
        self._seen = 0.0  # `at` of the newest scale record printed

    def __enter__(self) -> PlainView:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def _print(self, line: str) -> None:
        print(line, file=self.out, flush=True)

    def update(self, snap: Snapshot) -> None:
        for rec in snap.decisions:
            if rec.at > self._seen:
                self._seen = rec.at
                self._print(f"scale {rec.direction} {rec.before} -> {rec.after}: {rec.reason}")
        now = time.monotonic()
        if self._last_status is None or now - self._last_status >= self.every:
            self._last_status = now
            self._print(status_line(snap))

    def note(self, text: str) -> None:
        self._print(text)


def status_line(snap: Snapshot) -> str:
    if snap.queues is None:
        queues = f"queues=unreadable error={snap.error!r}"
    else:
        queues = " ".join(f"{q.name}={q.waiting}+{q.in_flight}" + ",paused" * q.paused
                          + ("" if q.schedule_due_in is None else f",tick={q.schedule_due_in:.0f}s")
                          for q in snap.queues)
    return (f"status desired={snap.desired} running={snap.running} ready={snap.ready} "
            f"busy={snap.busy} " + (f"unknown={snap.unknown} " if snap.unknown else "")
            + f"stopping={snap.stopping} backlog={snap.backlog} "
            f"oldest={_age(snap.oldest)} done={snap.done} retried={snap.retried} "
            f"failed={snap.failed} "
            f"rate={snap.rate:.1f}/s crashed={snap.crashed} {queues}"
            + (f" problem={snap.problem!r}" if snap.problem else ""))
