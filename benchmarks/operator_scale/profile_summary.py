"""Where the operator's time goes: a py-spy profile (``bench.py --profile``) as two tables.

    .venv/bin/python benchmarks/operator_scale/profile_summary.py PROFILE [--top 25]

py-spy's raw format is one line per distinct stack, ``frame;frame;... count``,
each frame ``function (file:line)``. Printed: the share of samples *in* a
function or below it (inclusive: each function counted once per stack) and
the share spent in the function itself (self), both over all samples of the
process, idle ones included (``--idle`` in py-spy is off, so an idle event loop
shows as nothing: the shares are of the time the process was on a CPU or
waiting on the GIL).
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

_FRAME = re.compile(r"^(?P<func>[^ ]+) \((?P<file>[^:]+)(?::\d+)?\)$")


def frame_name(frame: str) -> str:
    """``function (path/to/module.py:12)`` -> ``module.py:function`` (line numbers merged)."""
    m = _FRAME.match(frame.strip())
    if not m:
        return frame.strip()
    file = m.group("file")
    parts = file.split("/")
    short = "/".join(parts[-2:]) if parts[-1] == "__init__.py" else parts[-1]
    return f"{short}:{m.group('func')}"


def summarize(path: Path) -> tuple[int, Counter[str], Counter[str]]:
    total = 0
    inclusive: Counter[str] = Counter()
    self_time: Counter[str] = Counter()
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [frame_name(f) for f in stack.split(";") if f]
        if not frames:
            continue
        total += n
        for name in set(frames):
            inclusive[name] += n
        self_time[frames[-1]] += n
    return total, inclusive, self_time


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("profile", type=Path)
    p.add_argument("--top", type=int, default=25)
    p.add_argument("--match", default="", help="only functions whose name contains this")
    args = p.parse_args()
    total, inclusive, self_time = summarize(args.profile)
    print(f"{total} samples")
    for title, table in (("inclusive", inclusive), ("self", self_time)):
        print(f"\n{title}:")
        rows = [(k, v) for k, v in table.most_common() if args.match in k][:args.top]
        for name, n in rows:
            print(f"{100 * n / total:6.1f}%  {name}")


if __name__ == "__main__":
    main()
