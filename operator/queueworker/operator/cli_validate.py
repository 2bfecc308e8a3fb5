"""`queueworker validate -f FILE...`: check QueueWorker manifests like the API server would.

Prints one line per problem, naming the field and the rule; exit 1 if any.
"""

from __future__ import annotations

import argparse
import sys

import yaml

from queueworker.operator import api
from queueworker.operator.validation import SpecError, parse_manifest


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="queueworker validate", description=__doc__)
    parser.add_argument("-f", "--filename", action="append", required=True,
                        help="manifest file (YAML, several documents allowed); '-' for stdin")
    args = parser.parse_args(argv)
    bad = 0
    for path in args.filename:
        try:
            if path == "-":
                text = sys.stdin.read()
            else:
                with open(path, encoding="utf-8") as fh:
                    text = fh.read()
            docs = [d for d in yaml.safe_load_all(text) if d is not None]
        except (OSError, yaml.YAMLError) as exc:
            print(f"{path}: cannot read: {exc}", file=sys.stderr)
            bad += 1
            continue
        for doc in docs:
            if isinstance(doc, dict) and doc.get("kind") != api.KIND:
                continue  # other objects in the same file (Secrets, ...)
            name = (doc.get("metadata") or {}).get("name", "?") if isinstance(doc, dict) else "?"
            try:
                parse_manifest(doc)
            except SpecError as exc:
                bad += 1
                for problem in exc.problems:
                    print(f"{path}: {api.KIND}/{name}: {problem}", file=sys.stderr)
            else:
                print(f"{path}: {api.KIND}/{name}: valid")
    return 1 if bad else 0
