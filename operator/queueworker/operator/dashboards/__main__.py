"""Print one dashboard, or write all of them: `python -m queueworker.operator.dashboards`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from queueworker.operator.dashboards import BUILDERS, render


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m queueworker.operator.dashboards",
        description="Generate the chart's Grafana dashboards (JSON) with grafana-foundation-sdk.")
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("name", nargs="?", choices=sorted(BUILDERS),
                        help="print this dashboard to stdout")
    target.add_argument("--write", metavar="DIR", type=Path,
                        help="write every dashboard to DIR/<name>.json")
    args = parser.parse_args(argv)
    if args.name:
        sys.stdout.write(render(args.name))
        return 0
    if not args.write.is_dir():
        parser.error(f"--write: {args.write} is not a directory")
    for name in sorted(BUILDERS):
        (args.write / f"{name}.json").write_text(render(name), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
