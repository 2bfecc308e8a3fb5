"""The RQ job of benchmarks/foreign/long_jobs.py: logs its own start and finish.

Like tests/local/rq_jobs.py, but each run appends a line `<pid> <epoch>` to
`<dir>/<name>.start|.done`, so a job run twice shows two start lines.
"""

from __future__ import annotations

import os
import time
from pathlib import Path


def _mark(path: Path) -> None:
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(f"{os.getpid()} {time.time()}\n")


def sleep_job(marker_dir: str, name: str, seconds: float) -> str:
    d = Path(marker_dir)
    _mark(d / f"{name}.start")
    time.sleep(seconds)
    _mark(d / f"{name}.done")
    return name
