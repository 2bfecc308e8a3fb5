"""One interface for every queue layout, in the spirit of KEDA's pkg/scalers.

A reader says which commands it needs (`commands`), the caller puts the
commands of every queue into one pipeline, and the reader turns its slice of
the replies into a QueueDepth (`parse`). Readers never talk to Redis
themselves, so one poll is one round trip however many queues there are.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from queueworker.common.errors import QueueworkerError
from queueworker.engine.types import QueueDepth
from queueworker.operator.api import QueueLayout, QueueSpec

Arg = str | int | float | bytes


@dataclass(frozen=True)
class Command:
    args: tuple[Arg, ...]
    key: str  # the key read, named in errors
    # Error texts that mean "nothing there" (e.g. a stream not created yet): reply None.
    empty_on: tuple[str, ...] = ()


@dataclass(frozen=True)
class DepthError:
    """A queue that could not be read this poll; the other queues still were."""

    name: str
    layout: str
    key: str
    message: str

    def __str__(self) -> str:
        return f"queue {self.name!r} ({self.layout}): {self.message}"


class LayoutError(QueueworkerError, ValueError):
    """A reply that does not fit the layout (raised by `parse`, names the key)."""

    def __init__(self, key: str, message: str) -> None:
        self.key = key
        super().__init__(f"{key}: {message}")


class Reader(ABC):
    layout: ClassVar[QueueLayout]

    @abstractmethod
    def commands(self, q: QueueSpec, now: float) -> list[Command]:
        """Commands to add to the shared pipeline, in the order `parse` expects."""

    @abstractmethod
    def parse(
        self, q: QueueSpec, cmds: Sequence[Command], replies: Sequence[Any], now: float
    ) -> QueueDepth:
        """Depth from the replies to `cmds` (None where an `empty_on` error came back)."""

    def depth(self, q: QueueSpec, waiting: int, in_flight: int, **kw: Any) -> QueueDepth:
        return QueueDepth(
            name=q.name, layout=q.layout.value, waiting=waiting, in_flight=in_flight, **kw
        )


def text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def integer(value: Any, key: str) -> int:
    """An integer reply; None (missing key, tolerated error) counts as 0."""
    if value is None:
        return 0
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    try:
        return int(text(value) or 0)
    except ValueError:
        raise LayoutError(key, f"expected an integer, got {value!r:.60}") from None


def age(now: float, enqueued_at: float | None) -> float | None:
    """Age in seconds, never negative (clocks of producers and operator differ a little)."""
    if enqueued_at is None:
        return None
    return max(0.0, now - enqueued_at)


# Oldest waiting job's hash field through one script, so that the age costs no
# second round trip: LINDEX the list end that holds the oldest id, then HGET
# `<prefix><id>` `<field>`. Standalone Redis only derives the job key inside the
# script (Redis Cluster would want it declared in KEYS; such layouts are
# read per queue there anyway).
OLDEST_FIELD_LUA = """
local id = redis.call('LINDEX', KEYS[1], ARGV[1])
if not id then return false end
return redis.call('HGET', ARGV[2] .. id, ARGV[3])
"""


def oldest_field(list_key: str, index: int, job_prefix: str, field: str) -> Command:
    return Command(("EVAL", OLDEST_FIELD_LUA, 1, list_key, index, job_prefix, field), list_key)
