"""Quiet first: a scale-down of workers that can be told to stop fetching (Sidekiq).

A Sidekiq process reports `busy` only at its beat (every 5 s in 6.x, 10 s from
7.0), so a pod that took a job a moment before a scale-down still reads idle,
is picked as a victim, and its job is cut at `-t`. Sidekiq's own way to stop
a process without cutting anything is to quiet it first (`TSTP`: it fetches
no new job, finishes the ones in hand) and stop it once it is idle. This
module decides, from what the workers' registry said, which of the engine's
victims to quiet now, which are drained and may go now, and which are still
waited for; the caller (operator/controller/act.py) sends the quiet and
lowers the replicas by the pods ready to go, marked to go first.

A drained pod is one whose every worker process said, in one beat, that it
is quiet and runs nothing. Sidekiq writes `quiet` from the flag its TSTP
handler sets, in the same beat as `busy`, so a beat that says quiet was
written after the quiet took hold (newer than it), and from then on `busy`
can only fall: a quiet process takes no job (a fetch that returns after the
flag is set pushes its job straight back, sidekiq processor.rb `fetch`).

A quieted process never takes work again (Sidekiq has no un-quiet). So a
quieted pod always leaves once drained, even when demand has come back
before it did: keeping it would hold a replica that runs nothing. The
engine's next poll then sees one replica fewer and starts a fresh pod if it
still needs one: the quieted pod is replaced, never kept quiet for good.

A quiet pod still busy is waited for as long as it runs a job, as the engine
keeps busy pods while idle ones can go (engine/victims.py); it takes nothing
new, so it drains. The bound is on the quiet itself: a pod whose
beats have not said quiet `SIGNAL_SECONDS` after it was sent (its process
ignores the signal, or lost it: Sidekiq's signal list expires then) goes as
it would have without quiet, its library's stop timeout running then.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

# Sidekiq's signal list expires 60 s after the quiet is pushed (api.rb `signal`):
# a quiet not taken by then never will be.
SIGNAL_SECONDS = 60.0
# How long the pod index may show a pod whose replica was given up (as the
# operator trusts its own scale patch over a lagging index: controller/observe.py).
RELEASE_SECONDS = 30.0


@dataclass(frozen=True)
class Quietable:
    """A pod's worker processes as their registry reports them (all of them)."""

    quiet: bool  # every process said it stopped fetching
    busy: bool  # a process said it runs a job


@dataclass(frozen=True)
class Memory:
    """What a caller keeps from one call to the next (QuietPlan.memory)."""

    quieted: dict[str, float] = field(default_factory=dict)  # pod -> when quieted
    # pod -> when its replica was given up: the pod index shows a pod the
    # ReplicaSet is about to delete for a while, and it must not be counted again.
    released: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class QuietPlan:
    quiet: tuple[str, ...] = ()  # victims to quiet now
    ready: tuple[str, ...] = ()  # drained (or nothing to quiet in them): to remove now
    waiting: tuple[str, ...] = ()  # quieted, not yet seen drained
    replicas: int = 0  # the replica count to set now
    memory: Memory = field(default_factory=Memory)  # pass back next call


def plan(*, desired: int, current: int, victims: Sequence[str], live: Sequence[str],
         workers: Mapping[str, Quietable], memory: Memory, now: float,
         limit: float = SIGNAL_SECONDS) -> QuietPlan:
    """What to do with the engine's scale-down (`desired` of `current` replicas,
    `victims` in the engine's order) when workers can be quieted.

    `live`: the pods that count as replicas (not terminating); `workers`: the
    pods whose processes the registry reports (a pod it does not report on
    cannot be quieted and goes at once, as without quiet); `memory`: what
    the last call returned. Pods quieted earlier come first among the
    victims (they are leaving anyway), then the engine's own, up to
    `current - desired`. A scale-up removes nothing: a Deployment's replicas
    can only remove pods when they go down (a quieted pod goes at a later
    poll that does not scale up). A pod released less than `RELEASE_SECONDS`
    ago is already out of `current`: it is neither counted nor released again.
    """
    released = {p: at for p, at in memory.released.items()
                if p in live and now - at < RELEASE_SECONDS}
    live = [p for p in live if p not in released]
    alive = set(live)
    # A pod quieted by someone else (or before an operator restart) is quieted too.
    known = {p: memory.quieted.get(p, now) for p in live
             if p in memory.quieted or (p in workers and workers[p].quiet)}
    leaving = list(known)
    for name in victims:
        if len(leaving) >= current - desired:
            break
        if name in alive and name not in known:
            leaving.append(name)
    quiet, ready, waiting = [], [], []
    for name in leaving:
        w = workers.get(name)
        if w is None or (w.quiet and not w.busy):
            ready.append(name)
        elif name not in known:
            quiet.append(name)
        elif not w.quiet and now - known[name] >= limit:  # the quiet was not taken
            ready.append(name)
        else:
            waiting.append(name)
    if desired > current:
        return QuietPlan(waiting=tuple(ready + waiting), replicas=desired,
                         memory=Memory(known, released))
    still = {p: at for p, at in known.items() if p in waiting}
    still.update(dict.fromkeys(quiet, now))
    released.update(dict.fromkeys(ready, now))
    return QuietPlan(tuple(quiet), tuple(ready), tuple(waiting), current - len(ready),
                     Memory(still, released))
