"""`queueworker crd`: print the generated CustomResourceDefinition."""

from __future__ import annotations

import argparse
import sys

from queueworker.operator import crd, reference


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="queueworker crd", description=__doc__)
    parser.add_argument("-o", "--output", help="write to this file instead of stdout")
    parser.add_argument("--reference", action="store_true",
                        help="print the spec reference (markdown) instead of the CRD")
    args = parser.parse_args(argv)
    text = reference.render() if args.reference else crd.render()
    if args.output:
        with open(args.output, "w", encoding="utf-8") as fh:
            fh.write(text)
    else:
        sys.stdout.write(text)
    return 0
