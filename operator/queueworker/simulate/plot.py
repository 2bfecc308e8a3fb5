"""`queueworker simulate --plot FILE`: backlog, replicas and wait over time,
one panel row per quantity, every policy on one shared time axis.

Drawn with matplotlib (the optional extra `queueworker[plot]`). The file's
suffix picks the format: .png, .svg, or .html (a self-contained page: the PNG
inline, with the comparison table under it).
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from queueworker.common.errors import QueueworkerError
from queueworker.simulate.timeline import Timeline

FORMATS = (".png", ".svg", ".html")
COLORS = {"ours": "#1b7837", "keda-hpa": "#d6604d", "keda-hpa-same-grace": "#b2182b",
          "horizon": "#2166ac", "keda-hpa-inflight": "#8073ac"}


class PlotError(QueueworkerError, ValueError):
    """A plot that cannot be drawn: the message says why."""


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only: no display needed
        import matplotlib.pyplot as plt
    except ImportError:
        raise PlotError("--plot needs matplotlib: pip install 'queueworker[plot]'") from None
    return plt


def _scale(seconds: float) -> tuple[float, str]:
    return (3600.0, "hours") if seconds > 3 * 3600 else (60.0, "minutes")


def figure(runs: Sequence[tuple[str, Timeline]], title: str) -> Any:
    """The figure: backlog, then replicas (desired, ready, busy) per policy, then wait."""
    plt = _pyplot()
    # Every run lasts at least to the trace's end plus the tail; one that never
    # finished some job goes on for hours more: the axis stops with the shortest.
    end = min((tl.t[-1] for _, tl in runs if tl.t), default=1.0)
    unit, label = _scale(end)
    n = len(runs)
    fig, axes = plt.subplots(n + 2, 1, sharex=True, figsize=(10, 2.0 * (n + 2)),
                             gridspec_kw={"height_ratios": [1.2] + [1.0] * n + [1.2]})
    backlog, waits = axes[0], axes[-1]
    for i, (policy, tl) in enumerate(runs):
        color = COLORS.get(policy, f"C{i}")
        t = [x / unit for x in tl.t]
        backlog.plot(t, tl.waiting, color=color, lw=1, label=policy)
        ax = axes[1 + i]
        ax.plot(t, tl.desired, color=color, lw=1.2, label="desired")
        ax.plot(t, tl.ready, color=color, lw=0.8, ls="--", label="ready")
        ax.fill_between(t, tl.busy, color=color, alpha=0.25, lw=0, label="busy")
        ax.set_ylabel(f"{policy}\nreplicas", fontsize=8)
        ax.legend(loc="upper right", fontsize=7, ncol=3, frameon=False)
        xs, ys = tl.wait_p95()
        waits.plot([x / unit for x in xs], [y if y > 0 else math.nan for y in ys],
                   color=color, lw=1, label=policy)
    backlog.set_ylabel("jobs waiting", fontsize=8)
    backlog.legend(loc="upper right", fontsize=7, ncol=len(runs), frameon=False)
    backlog.set_title(title, fontsize=10)
    waits.set_ylabel("p95 wait s\n(jobs started)", fontsize=8)
    waits.set_yscale("log")
    waits.set_xlabel(label)
    waits.set_xlim(0, end / unit)
    for ax in axes:
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3, lw=0.5)
    fig.tight_layout()
    return fig


def _png(fig: Any, dpi: int) -> bytes:
    """The figure as a PNG of 64 colours: a third of the size, the same picture
    (a line plot has a handful of colours plus their antialiased edges)."""
    from PIL import Image  # comes with matplotlib

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    img = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
    out = io.BytesIO()
    img.quantize(colors=64).save(out, format="PNG", optimize=True)
    return out.getvalue()


def write(path: str | Path, runs: Sequence[tuple[str, Timeline]], title: str,
          table: str | None = None, dpi: int = 72) -> None:
    """Draw `runs` into `path` (.png, .svg or .html)."""
    p = Path(path)
    if p.suffix.lower() not in FORMATS:
        raise PlotError(f"{p}: the plot file must end in {', '.join(FORMATS)}")
    fig = figure(runs, title)
    plt = _pyplot()
    try:
        if p.suffix.lower() == ".svg":
            fig.savefig(p, dpi=dpi)
            return
        png = _png(fig, dpi)
        if p.suffix.lower() == ".html":
            img = base64.b64encode(png).decode()
            pre = f"<pre>{html.escape(table)}</pre>" if table else ""
            p.write_text(f"<!doctype html><meta charset=utf-8><title>{html.escape(title)}"
                         f"</title><h3>{html.escape(title)}</h3>{pre}"
                         f'<img alt="backlog, replicas and wait over time" '
                         f'src="data:image/png;base64,{img}">\n')
        else:
            p.write_bytes(png)
    except OSError as exc:
        raise PlotError(f"{p}: cannot write the plot ({exc.strerror})") from None
    finally:
        plt.close(fig)
