"""`queueworker validate -f FILE...`: check QueueWorker manifests like the API server would.

Prints one line per problem, naming the file, the object, the field and the
rule; exit 1 if any. A file that cannot be read or decoded, or that holds no
QueueWorker at all, is a problem too: a check that silently passes a wrong
file (an empty one, a binary one, a Deployment) would say "valid" about
nothing. Other objects in the same file (Secrets, ...) are skipped.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import yaml

from queueworker.common.errors import QueueworkerError
from queueworker.operator import api, kubectl_yaml, validation_warnings
from queueworker.operator.validation import SpecError, parse_manifest


class UnreadableFileError(QueueworkerError):
    """A manifest file that cannot be read, decoded or parsed as YAML."""


def _read(path: str) -> str:
    try:
        if path == "-":
            raw = sys.stdin.buffer.read()
        else:
            with open(path, "rb") as fh:
                raw = fh.read()
    except OSError as exc:
        raise UnreadableFileError(exc.strerror or str(exc)) from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UnreadableFileError(
            f"not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}); "
            "is it a binary file?") from None


def _documents(text: str) -> list[Any]:
    try:
        docs = kubectl_yaml.load_all(text)
    except yaml.YAMLError as exc:
        raise UnreadableFileError(" ".join(str(exc).split())) from None
    out: list[Any] = []
    for doc in docs:
        # kubectl expands `kind: List` (what `kubectl get -o yaml` writes).
        if isinstance(doc, dict) and doc.get("kind") == "List" and isinstance(
                doc.get("items"), list):
            out.extend(doc["items"])
        else:
            out.append(doc)
    return out


def _is_ours(doc: Any) -> bool:
    """A QueueWorker, or something meant to be one: our group or a kind that
    differs only in case (`Queueworker`). Those are checked, so a typo is
    reported (naming the kind expected) instead of the object being skipped."""
    if not isinstance(doc, dict):
        return True  # a scalar or a list where an object belongs: report it
    kind, version = doc.get("kind"), doc.get("apiVersion")
    if isinstance(kind, str) and kind.lower() == api.KIND.lower():
        return True
    return isinstance(version, str) and version.split("/")[0] == api.GROUP


def _describe(doc: Any) -> str:
    if not isinstance(doc, dict):
        return type(doc).__name__
    meta = doc.get("metadata")
    name = meta.get("name", "?") if isinstance(meta, dict) else "?"
    return f"{doc.get('kind', '?')}/{name}"


def check_file(path: str) -> list[str]:
    """Problem lines for one file (empty when every QueueWorker in it is valid);
    prints the `valid` lines itself."""
    try:
        docs = _documents(_read(path))
    except UnreadableFileError as exc:
        return [f"{path}: cannot read: {exc}"]
    ours = [d for d in docs if _is_ours(d)]
    if not ours:
        found = ", ".join(_describe(d) for d in docs) or "the file is empty"
        return [f"{path}: no {api.KIND} ({api.API_VERSION}) found ({found})"]
    problems: list[str] = []
    for doc in ours:
        label = f"{path}: {_describe(doc)}"
        try:
            spec = parse_manifest(doc)
        except SpecError as exc:
            problems += [f"{label}: {problem}" for problem in exc.problems]
        else:
            print(f"{label}: valid")
            for warning in validation_warnings.warnings(spec):  # valid, but can lose jobs
                print(f"{label}: warning: {warning}")
    return problems


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="queueworker validate", description=__doc__)
    parser.add_argument("-f", "--filename", action="append", required=True,
                        help="manifest file (YAML, several documents allowed); '-' for stdin")
    args = parser.parse_args(argv)
    bad = 0
    for path in args.filename:
        problems = check_file(path)
        for line in problems:
            print(line, file=sys.stderr)
        bad += bool(problems)
    return 1 if bad else 0
