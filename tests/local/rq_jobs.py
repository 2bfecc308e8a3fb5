"""Jobs a real `rq worker` runs in the local-mode tests: each logs its own start and finish.

Imported by the worker from this folder (the tests put it on PYTHONPATH).
Markers are files `<dir>/<name>.start` and `<dir>/<name>.done`, so the test
sees what ran, what finished and what was cut, whatever RQ records.
"""

from __future__ import annotations

import os
import time
from pathlib import Path


def sleep_job(marker_dir: str, name: str, seconds: float) -> str:
    d = Path(marker_dir)
    (d / f"{name}.start").write_text(f"{os.getpid()} {time.time()}")
    time.sleep(seconds)
    (d / f"{name}.done").write_text(f"{os.getpid()} {time.time()}")
    return name
