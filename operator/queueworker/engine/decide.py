"""The decision: one observation in, one replica count (and why) out. No I/O.

`decide` is the policy, read top to bottom; each step below it is a small pure
function that returns its result and the part it adds to the reason line:
paused -> queues unreadable (fallback) -> demand by policy (jobs, and seconds of
work where rates are measured; jobs on terminating pods are theirs; a paused
queue's waiting jobs are none, queue_admin.py) -> activation from zero / idle
before zero (jobs seen in the counters between polls count as activity; a
schedule tick due within a pod start wakes one replica) -> [min, max] ->
stabilization windows -> the restart horizon (churn.py: no scale-up for work the
pods there clear before a new one is ready; no scale-down below the forecast;
busy pods beyond it drain ahead where jobs are long) -> never below the busy pods
(counting pods that took a job since their last heartbeat) -> scale-downs a
restart horizon apart -> rate limits -> free GPUs.
"""

from __future__ import annotations

from typing import Any

from queueworker.engine import (
    capacity,
    churn,
    forecast,
    queue_admin,
    ratelimit,
    rates,
    schedule,
    victims,
    window,
)
from queueworker.engine.policy import Demand, recommend
from queueworker.engine.types import Decision, Observation, PodState, QueueDepth
from queueworker.operator.api import QueueWorkerSpec, ScalingSpec

MEMORY_VERSION = 1


def decide(
    spec: QueueWorkerSpec, obs: Observation, memory: dict[str, Any] | None
) -> Decision:
    """Replicas for this QueueWorker now. Pass `Decision.memory` back next call.

    Raises ValueError naming the field for an observation that cannot be true
    (negative counts): a bug in the caller, not something to scale on.
    """
    _check(obs)
    mem_in = _memory_in(memory)
    if spec.scaling.paused:
        return _paused(obs, mem_in)
    least, sched_why, sched_mem = schedule.floor(spec.scaling, obs.now, mem_in.get("sched"))
    if least > spec.scaling.min_replicas:  # a window is open: its floor is minReplicas now
        spec = spec.model_copy(update={"scaling": spec.scaling.model_copy(
            update={"min_replicas": least})})
    s = spec.scaling
    if obs.queues is None:
        return _unreadable(spec, obs, mem_in, sched_why)
    now, current = obs.now, obs.current_replicas

    start_mem, horizon = forecast.starts(mem_in.get("start"), now, obs.pods,
                                         s.poll_interval_seconds)
    queues, paused_why = queue_admin.for_demand(obs.queues)
    tick = queue_admin.due(queues, horizon.start_seconds)
    buffered = sum(p.buffered for p in obs.pods if not p.terminating)
    demand, rate_mem, measured, moved = _demand(queues, now, mem_in, buffered)
    busy, busy_why, slots, seen_slots = _pods(obs.pods, demand, mem_in)
    demand, leaving_why = churn.leaving(obs.pods, demand)
    want, reason = recommend(s, demand, measured, slots)
    reason += paused_why + leaving_why + sched_why
    enq = rate_mem.get("enq")
    ring, upper = forecast.recent(mem_in.get("arr"), now, enq if isinstance(enq, int) else None,
                                  horizon.seconds)
    ahead, ahead_why = forecast.need(s, measured, slots, horizon, upper)
    long_mem, long_seen, watched = forecast.longest(mem_in.get("long"), now, obs.pods)
    active_at = now if tick else _last_active(mem_in, now, demand, busy, moved)
    if moved and demand.jobs == 0 and busy == 0:
        reason += "; jobs came and went since the last poll (counters): idle clock reset"

    want, to_zero, why = _activation_and_idle(s, current, demand, want, now - active_at, busy)
    want, to_zero, wake_why = queue_admin.wake(tick, horizon.start_seconds, want, to_zero)
    reason += why + wake_why
    bounded, why = _bounds(s, want)
    reason += why
    up_win, down_win, desired, why = _stabilize(s, mem_in, now, current, bounded, to_zero)
    reason += why
    if not to_zero:
        desired, why = churn.worth_starting(demand, measured if upper is not None else None,
                                            horizon, current, desired, slots)
        reason += why
        desired, why = churn.keep(current, desired, ahead, ahead_why)
        reason += why
        room = (obs.gpu.max_replicas - current
                if obs.gpu is not None and spec.gpu.cap_to_free_capacity else None)
        drain = churn.drain_ahead(spec, demand, measured, horizon, current, desired, ahead,
                                  busy, slots, room, (long_seen, watched))
        if drain is None:
            desired, why = churn.busy_floor(s, current, desired, busy, busy_why)
        else:
            desired, why = drain
        reason += why
        if horizon.measured:
            desired, why = churn.spacing(mem_in.get("downAt"), now, current, desired,
                                         horizon.seconds)
            reason += why
    desired, events, why = _rate_limit(s, mem_in, now, current, desired)
    reason += why

    memory_out = _memory_out(s, active_at, up_win, down_win, events, rate_mem)
    if seen_slots > 1:
        memory_out["slots"] = seen_slots
    if start_mem:
        memory_out["start"] = start_mem
    if sched_mem:
        memory_out["sched"] = sched_mem
    if long_mem:
        memory_out["long"] = long_mem
    if ring:
        memory_out["arr"] = ring
    down_at = now if desired < current else mem_in.get("downAt")
    if isinstance(down_at, int | float) and not isinstance(down_at, bool):
        memory_out["downAt"] = float(down_at)
    return _finish(spec, obs, desired, reason, memory_out, wanted=bounded)


# ----------------------------------------------------------------- entry, exit


def _check(obs: Observation) -> None:
    # One pass without building anything: this runs at every poll of every QueueWorker.
    ok = obs.current_replicas >= 0
    for q in obs.queues or ():
        ok = ok and q.waiting >= 0 and q.in_flight >= 0 and q.delayed >= 0
    if ok:
        return
    bad = [f"current_replicas={obs.current_replicas}"] if obs.current_replicas < 0 else []
    for q in obs.queues or ():
        for name in ("waiting", "in_flight", "delayed"):
            if getattr(q, name) < 0:
                bad.append(f"queues[{q.name!r}].{name}={getattr(q, name)}")
    raise ValueError("impossible observation: " + ", ".join(bad) + " (must be >= 0)")


def _memory_in(memory: dict[str, Any] | None) -> dict[str, Any]:
    """The memory of the last call, or empty when missing or of another version."""
    mem_in: dict[str, Any] = memory if isinstance(memory, dict) else {}
    return mem_in if mem_in.get("v") == MEMORY_VERSION else {}


def _direction(desired: int, current: int) -> str:
    return "up" if desired > current else "down" if desired < current else "none"


def _paused(obs: Observation, mem_in: dict[str, Any]) -> Decision:
    """Paused: hold spec.replicas (or the current count); memory kept as it was."""
    current = obs.current_replicas
    desired = obs.manual_replicas if obs.manual_replicas is not None else current
    src = "spec.replicas" if obs.manual_replicas is not None else "current replicas"
    return Decision(
        desired=desired,
        reason=f"paused: {src} -> {desired}",
        remove_first=victims.pick(obs.pods, current - desired),
        memory=dict(mem_in) or {"v": MEMORY_VERSION},
        direction=_direction(desired, current),
    )


def _unreadable(spec: QueueWorkerSpec, obs: Observation, mem_in: dict[str, Any],
                sched_why: str) -> Decision:
    """Queues unreadable: fallbackReplicas (or keep current), within bounds."""
    s = spec.scaling
    why = obs.error or "queues not readable"
    if s.fallback_replicas is not None:
        desired, src = s.fallback_replicas, "fallbackReplicas"
    else:
        desired, src = obs.current_replicas, "keep current"
    desired = min(max(desired, s.min_replicas), s.max_replicas)
    return _finish(
        spec, obs, desired, f"queues unreadable ({why}): {src} -> {desired}{sched_why}",
        dict(mem_in) or {"v": MEMORY_VERSION},
    )


def _finish(
    spec: QueueWorkerSpec,
    obs: Observation,
    desired: int,
    reason: str,
    memory: dict[str, Any],
    wanted: int | None = None,
) -> Decision:
    """Last step, free GPUs, then the Decision with the pods to remove first."""
    desired, shortfall, gpu_why = capacity.cap(
        spec, obs, desired if wanted is None else wanted, desired
    )
    current = obs.current_replicas
    return Decision(
        desired=desired,
        reason=reason + gpu_why,
        remove_first=victims.pick(obs.pods, current - desired),
        gpu_limited=shortfall > 0,
        gpu_shortfall=shortfall,
        memory=memory,
        direction=_direction(desired, current),
    )


# ----------------------------------------------------------------- the steps


def _demand(
    queues: tuple[QueueDepth, ...], now: float, mem_in: dict[str, Any], buffered: int
) -> tuple[Demand, dict[str, Any], rates.Rates | None, bool]:
    """Jobs waiting and in flight over all queues; rates where every queue counts;
    whether the counters moved since the last poll. Prefetched (`buffered`)
    jobs are in flight for the queue and demand here, but not running: the
    service time is measured on the running ones."""
    waiting = in_flight = enq = done = 0
    counted = True
    for q in queues:  # one loop, not five sums: this runs at every poll
        waiting += q.waiting
        in_flight += q.in_flight
        if q.enqueued_total is None or q.completed_total is None:
            counted = False
        else:
            enq += q.enqueued_total
            done += q.completed_total
    enq_now, done_now = (enq, done) if counted else (None, None)
    moved = rates.moved(mem_in.get("rates"), enq_now, done_now)
    running = max(0, in_flight - buffered)
    rate_mem, measured = rates.update(mem_in.get("rates"), now, enq_now, done_now, running)
    return Demand(waiting, in_flight), rate_mem, measured, moved


def _pods(
    pods: tuple[PodState, ...], demand: Demand, mem_in: dict[str, Any]
) -> tuple[int, str, int, int]:
    """What the pods say, in one pass: (busy pods, reason part, job slots per
    replica, most jobs one pod was seen running).

    Busy: the busy heartbeats and pods holding prefetched jobs (not free
    capacity), plus idle-looking pods for jobs in flight that no heartbeat
    shows yet (a pod that took a job less than a beat ago still looks idle;
    the queue already counts its job). Slots: what the workers say, else the
    most jobs one pod was seen running (remembered), else 1.
    """
    busy = shown = idle = said = seen = 0
    for p in pods:
        taken = p.busy or p.buffered > 0
        if taken:
            shown += max(p.in_flight, int(p.busy)) + p.buffered
        if not p.terminating:
            busy += taken
            idle += not taken
            seen = max(seen, p.in_flight)
        if p.slots is not None and p.slots > said:
            said = p.slots
    kept = mem_in.get("slots")
    if isinstance(kept, int) and not isinstance(kept, bool) and kept > seen:
        seen = min(kept, 1_000_000)
    slots = said or max(seen, 1)
    lagging = min(max(0, demand.in_flight - shown), idle)
    if not lagging:
        return busy, "", slots, seen
    return busy + lagging, (
        f" (+{lagging} idle-looking: in flight {demand.in_flight} > {shown} "
        "in heartbeats, a job taken since the last beat)"
    ), slots, seen


def _last_active(
    mem_in: dict[str, Any], now: float, demand: Demand, busy: int, moved: bool
) -> float:
    """The idle-before-zero clock: any job anywhere (waiting, in flight, a busy
    pod, or one enqueued or completed between polls) resets it."""
    active_at = mem_in.get("active")
    if demand.jobs > 0 or busy > 0 or moved or not isinstance(active_at, int | float):
        return now
    return float(active_at)


def _activation_and_idle(
    s: ScalingSpec, current: int, demand: Demand, want: int, idle_for: float, busy: int
) -> tuple[int, bool, str]:
    """From zero only above activationBacklog; to zero only after idleSecondsBeforeZero,
    and never under a busy pod (its job may be in no count: Celery's early ack).

    Returns (want, going to zero, reason part).
    """
    if s.min_replicas != 0:
        return want, False, ""
    # In-flight jobs with no replica are stranded (their worker died): only a
    # worker's reaper hands them back, so they activate like waiting ones.
    if current == 0 and demand.jobs <= s.activation_backlog:
        why = (
            f"; not activated: waiting {demand.waiting} + in flight {demand.in_flight} "
            f"<= activationBacklog {s.activation_backlog}"
            if want > 0
            else ""
        )
        return 0, False, why
    if want == 0 and current > 0:
        if idle_for >= s.idle_seconds_before_zero and not busy:
            return 0, True, (
                f"; no jobs for {idle_for:.0f}s >= {s.idle_seconds_before_zero}s -> 0"
            )
        return 1, False, (
            f"; no jobs for {idle_for:.0f}s of {s.idle_seconds_before_zero}s "
            "before zero: keep 1"
        )
    return want, False, ""


def _bounds(s: ScalingSpec, want: int) -> tuple[int, str]:
    bounded = min(max(want, s.min_replicas), s.max_replicas)
    if bounded != want:
        return bounded, f"; bounds [{s.min_replicas}, {s.max_replicas}] -> {bounded}"
    return bounded, ""


def _stabilize(
    s: ScalingSpec,
    mem_in: dict[str, Any],
    now: float,
    current: int,
    bounded: int,
    to_zero: bool,
) -> tuple[window.Window, window.Window, int, str]:
    """Stabilization windows: rise no higher than the lowest recent recommendation
    (scale-up window), fall no lower than the highest (scale-down window).

    Returns (scale-up window, scale-down window, desired, reason part).
    """
    up_win = window.load(mem_in.get("up"))
    down_win = window.load(mem_in.get("down"))
    lowest = window.push(up_win, now, bounded, s.scale_up.stabilization_seconds, keep_max=False)
    highest = window.push(
        down_win, now, bounded, s.scale_down.stabilization_seconds, keep_max=True
    )
    if current == 0 or to_zero:
        # From zero: the first job should not wait out a window. To zero: the
        # idle clock already was the stabilization.
        return up_win, down_win, bounded, ""
    desired = min(max(current, lowest), highest)
    why = ""
    if desired < bounded:
        why = f"; scale-up window {s.scale_up.stabilization_seconds}s holds {desired}"
    elif desired > bounded:
        why = f"; scale-down window {s.scale_down.stabilization_seconds}s holds {desired}"
    return up_win, down_win, desired, why


def _rate_limit(
    s: ScalingSpec, mem_in: dict[str, Any], now: float, current: int, desired: int
) -> tuple[int, ratelimit.Events, str]:
    """The scale-up and scale-down rate limits; records this change for the next calls.

    Returns (desired, recent changes, reason part).
    """
    longest = max(
        (r.period_seconds for r in (s.scale_up.rate_limit, s.scale_down.rate_limit) if r),
        default=0,
    )
    events = ratelimit.prune(ratelimit.load(mem_in.get("ev")), now, longest)
    why = ""
    if desired > current:
        top = ratelimit.up_limit(s.scale_up.rate_limit, current, events, now)
        if top is not None and desired > top:
            desired = max(top, current)
            why = f"; scale-up rate limit -> {desired}"
    elif desired < current:
        bottom = ratelimit.down_limit(s.scale_down.rate_limit, current, events, now)
        if bottom is not None and desired < bottom:
            desired = min(bottom, current)
            why = f"; scale-down rate limit -> {desired}"
    # Rate limits shape moves inside the bounds, never hold a count outside them.
    desired = min(max(desired, s.min_replicas), s.max_replicas)
    if desired != current and longest > 0:
        events.append([now, float(desired - current)])
    return desired, events, why


def _memory_out(
    s: ScalingSpec,
    active_at: float,
    up_win: window.Window,
    down_win: window.Window,
    events: ratelimit.Events,
    rate_mem: dict[str, Any],
) -> dict[str, Any]:
    """What the next call needs, and only what the spec makes it use."""
    memory_out: dict[str, Any] = {"v": MEMORY_VERSION, "active": float(active_at)}
    if up_win and s.scale_up.stabilization_seconds > 0:
        memory_out["up"] = up_win
    if down_win and s.scale_down.stabilization_seconds > 0:
        memory_out["down"] = down_win
    if events:
        memory_out["ev"] = events
    if rate_mem:
        memory_out["rates"] = rate_mem
    return memory_out
