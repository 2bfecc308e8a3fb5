"""Shards: several active operators, each serving the QueueWorkers one label selector picks.

``queueworker operator --shard NAME`` serves the QueueWorkers labelled
``queueworker.dev/shard=NAME`` (``--shard-selector`` sets any other selector,
e.g. ``!queueworker.dev/shard`` for those with no shard label) and elects its
active replica in its own peering object (``queueworker-operator-NAME``). The
selector goes to the API server with the QueueWorker watch
(``settings.watching.label_selectors``, handlers.startup), so a shard never
receives another shard's QueueWorkers: docs/sharding.md. The Deployments and
pods it builds carry ``queueworker.dev/shard=NAME`` (cluster/deployment.py), and
its Deployment and pod watches select on that label, server side too.

The selector grammar is the API server's equality- and set-based one;
``parse`` checks it here so a typo is one clear error at start, not a watch that
the API server refuses with 400 over and over. ``matches`` is the same rule on
a dict of labels (the test emulator filters its watches with it).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from queueworker.common.errors import QueueworkerError

SHARD_LABEL = "queueworker.dev/shard"
ENV_SHARD = "QUEUEWORKER_SHARD"
ENV_SHARD_SELECTOR = "QUEUEWORKER_SHARD_SELECTOR"
ENV_SHARD_ALL_PODS = "QUEUEWORKER_SHARD_ALL_PODS"

_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")  # a DNS label: a label value
# and a peering object's name suffix alike
_KEY = r"(?:[a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?"
_VALUE = r"(?:[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?"
_TERM = re.compile(
    rf"^\s*(?:(?P<not>!)\s*(?P<absent>{_KEY})"
    rf"|(?P<key>{_KEY})\s*(?:(?P<op>==|!=|=)\s*(?P<value>{_VALUE})"
    rf"|\s+(?P<set>in|notin)\s*\((?P<values>[^()]*)\))?)\s*$")


class ShardError(QueueworkerError):
    """A shard name or selector the operator cannot use."""


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!"
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        has = self.key in labels
        value = labels.get(self.key)
        if self.op == "exists":
            return has
        if self.op == "!":
            return not has
        if self.op in ("=", "in"):
            return has and value in self.values
        return not has or value not in self.values  # "!=" and "notin"


def _split(text: str) -> list[str]:
    """Terms are comma-separated; commas inside ``in (a, b)`` belong to the term."""
    terms, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            terms.append(text[start:i])
            start = i + 1
    terms.append(text[start:])
    return terms


def parse(selector: str) -> tuple[Requirement, ...]:
    """The requirements of a label selector; ShardError naming the bad term."""
    out = []
    for term in _split(selector):
        m = _TERM.match(term)
        if not m or not term.strip():
            raise ShardError(f"label selector {selector!r}: cannot read {term.strip()!r} "
                             "(forms: k=v, k!=v, k in (a,b), k notin (a,b), k, !k)")
        if m.group("absent"):
            out.append(Requirement(m.group("absent"), "!"))
        elif m.group("op"):
            op = "!=" if m.group("op") == "!=" else "="
            out.append(Requirement(m.group("key"), op, frozenset([m.group("value")])))
        elif m.group("set"):
            values = frozenset(v.strip() for v in m.group("values").split(","))
            if not all(re.fullmatch(_VALUE, v) for v in values):
                raise ShardError(f"label selector {selector!r}: bad value in {term.strip()!r}")
            out.append(Requirement(m.group("key"), m.group("set"), values))
        else:
            out.append(Requirement(m.group("key"), "exists"))
    return tuple(out)


def matches(requirements: tuple[Requirement, ...], labels: Mapping[str, str] | None) -> bool:
    return all(r.matches(labels or {}) for r in requirements)


@dataclass(frozen=True)
class Shard:
    name: str
    selector: str  # the QueueWorker watch's label selector, as sent to the API server

    @property
    def peering(self) -> str:
        return f"queueworker-operator-{self.name}"


def shard(name: str | None, selector: str | None) -> Shard | None:
    """The shard of ``--shard`` / ``--shard-selector`` (None: every QueueWorker)."""
    if not name:
        if selector:
            raise ShardError("--shard-selector needs --shard NAME (the shard's peering "
                             "object and logs are named after it)")
        return None
    if not _NAME.match(name):
        raise ShardError(f"shard name {name!r}: lowercase letters, digits and '-', "
                         "at most 63, starting and ending with a letter or digit")
    chosen = selector or f"{SHARD_LABEL}={name}"
    parse(chosen)
    return Shard(name, chosen)
