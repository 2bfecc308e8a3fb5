"""The decision: one observation in, one replica count (and why) out. No I/O.

Order of the steps, each a rule a person can check in the reason line:
paused -> queues unreadable (fallback) -> demand by policy -> activation from
zero / idle before zero -> [min, max] -> stabilization windows -> never below
the busy pods -> rate limits -> free GPUs.
"""

from __future__ import annotations

from typing import Any

from queueworker.engine import ratelimit, rates, victims, window
from queueworker.engine.policy import Demand, recommend
from queueworker.engine.types import Decision, Observation
from queueworker.operator.api import QueueWorkerSpec

MEMORY_VERSION = 1


def _direction(desired: int, current: int) -> str:
    return "up" if desired > current else "down" if desired < current else "none"


def _gpu_cap(
    spec: QueueWorkerSpec, obs: Observation, wanted: int, desired: int
) -> tuple[int, int, str]:
    """Apply the free-GPU cap: (desired, shortfall, reason part)."""
    gpu = obs.gpu
    if gpu is None or not spec.gpu.cap_to_free_capacity:
        return desired, 0, ""
    # minReplicas is the user's promise and wins over the cap (the extra pods
    # wait Pending and the shortfall is reported).
    allowed = max(gpu.max_replicas, spec.scaling.min_replicas)
    shortfall = max(0, wanted - allowed)
    if desired <= allowed:
        return desired, shortfall, (
            f"; GPUs short by {shortfall} ({gpu.resource_name} free {gpu.free})"
            if shortfall
            else ""
        )
    return allowed, shortfall, (
        f"; capped at {allowed} by free GPUs ({gpu.resource_name} free {gpu.free}, "
        f"{gpu.per_replica} per replica, {gpu.pending} pending), short by {shortfall}"
    )


def _finish(
    spec: QueueWorkerSpec,
    obs: Observation,
    desired: int,
    reason: str,
    memory: dict[str, Any],
    wanted: int | None = None,
) -> Decision:
    desired, shortfall, gpu_why = _gpu_cap(
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


def _check(obs: Observation) -> None:
    bad = [f"current_replicas={obs.current_replicas}"] if obs.current_replicas < 0 else []
    for q in obs.queues or ():
        for name in ("waiting", "in_flight", "delayed"):
            if getattr(q, name) < 0:
                bad.append(f"queues[{q.name!r}].{name}={getattr(q, name)}")
    if bad:
        raise ValueError("impossible observation: " + ", ".join(bad) + " (must be >= 0)")


def decide(
    spec: QueueWorkerSpec, obs: Observation, memory: dict[str, Any] | None
) -> Decision:
    """Replicas for this QueueWorker now. Pass `Decision.memory` back next call.

    Raises ValueError naming the field for an observation that cannot be true
    (negative counts): a bug in the caller, not something to scale on.
    """
    _check(obs)
    s = spec.scaling
    mem_in: dict[str, Any] = memory if isinstance(memory, dict) else {}
    if mem_in.get("v") != MEMORY_VERSION:
        mem_in = {}
    current = obs.current_replicas
    now = obs.now

    if s.paused:
        desired = obs.manual_replicas if obs.manual_replicas is not None else current
        src = "spec.replicas" if obs.manual_replicas is not None else "current replicas"
        return Decision(
            desired=desired,
            reason=f"paused: {src} -> {desired}",
            remove_first=victims.pick(obs.pods, current - desired),
            memory=dict(mem_in) or {"v": MEMORY_VERSION},
            direction=_direction(desired, current),
        )

    if obs.queues is None:
        why = obs.error or "queues not readable"
        if s.fallback_replicas is not None:
            desired, src = s.fallback_replicas, "fallbackReplicas"
        else:
            desired, src = current, "keep current"
        desired = min(max(desired, s.min_replicas), s.max_replicas)
        return _finish(
            spec, obs, desired, f"queues unreadable ({why}): {src} -> {desired}",
            dict(mem_in) or {"v": MEMORY_VERSION},
        )

    waiting = sum(q.waiting for q in obs.queues)
    in_flight = sum(q.in_flight for q in obs.queues)
    counted = all(
        q.enqueued_total is not None and q.completed_total is not None for q in obs.queues
    )
    enq = sum(q.enqueued_total or 0 for q in obs.queues) if counted else None
    done = sum(q.completed_total or 0 for q in obs.queues) if counted else None
    rate_mem, measured = rates.update(mem_in.get("rates"), now, enq, done, in_flight)

    demand = Demand(waiting, in_flight)
    want, reason = recommend(s, demand, measured)
    busy = victims.busy_count(obs.pods)

    # Idle-before-zero clock: any job anywhere (waiting, in flight, a busy pod) resets it.
    active_at = mem_in.get("active")
    if demand.jobs > 0 or busy > 0 or not isinstance(active_at, int | float):
        active_at = now
    idle_for = now - float(active_at)
    to_zero = False
    # In-flight jobs with no replica are stranded (their worker died): only a
    # worker's reaper hands them back, so they activate like waiting ones.
    if current == 0 and waiting + in_flight <= s.activation_backlog and s.min_replicas == 0:
        if want > 0:
            reason += (
                f"; not activated: waiting {waiting} + in flight {in_flight} "
                f"<= activationBacklog {s.activation_backlog}"
            )
        want = 0
    elif want == 0 and current > 0 and s.min_replicas == 0:
        if idle_for >= s.idle_seconds_before_zero:
            to_zero = True
            reason += f"; no jobs for {idle_for:.0f}s >= {s.idle_seconds_before_zero}s -> 0"
        else:
            want = 1
            reason += (
                f"; no jobs for {idle_for:.0f}s of {s.idle_seconds_before_zero}s "
                "before zero: keep 1"
            )

    bounded = min(max(want, s.min_replicas), s.max_replicas)
    if bounded != want:
        reason += f"; bounds [{s.min_replicas}, {s.max_replicas}] -> {bounded}"

    up_win = window.load(mem_in.get("up"))
    down_win = window.load(mem_in.get("down"))
    lowest = window.push(up_win, now, bounded, s.scale_up.stabilization_seconds, keep_max=False)
    highest = window.push(
        down_win, now, bounded, s.scale_down.stabilization_seconds, keep_max=True
    )
    desired = current
    if current == 0 or to_zero:
        # From zero: the first job should not wait out a window. To zero: the
        # idle clock already was the stabilization.
        desired = bounded
    else:
        if desired < lowest:
            desired = lowest
        if desired > highest:
            desired = highest
        if desired < bounded:
            reason += f"; scale-up window {s.scale_up.stabilization_seconds}s holds {desired}"
        elif desired > bounded and desired != current:
            reason += f"; scale-down window {s.scale_down.stabilization_seconds}s holds {desired}"
        elif desired > bounded:
            reason += f"; scale-down window {s.scale_down.stabilization_seconds}s holds {current}"

    if desired < current and not to_zero:
        floor = min(busy, s.max_replicas)
        if desired < floor:
            desired = floor
            reason += f"; {busy} pods busy: not below {floor}"

    longest = max(
        (r.period_seconds for r in (s.scale_up.rate_limit, s.scale_down.rate_limit) if r),
        default=0,
    )
    events = ratelimit.prune(ratelimit.load(mem_in.get("ev")), now, longest)
    if desired > current:
        top = ratelimit.up_limit(s.scale_up.rate_limit, current, events, now)
        if top is not None and desired > top:
            desired = max(top, current)
            reason += f"; scale-up rate limit -> {desired}"
    elif desired < current:
        bottom = ratelimit.down_limit(s.scale_down.rate_limit, current, events, now)
        if bottom is not None and desired < bottom:
            desired = min(bottom, current)
            reason += f"; scale-down rate limit -> {desired}"
    # Rate limits shape moves inside the bounds, never hold a count outside them.
    desired = min(max(desired, s.min_replicas), s.max_replicas)
    if desired != current and longest > 0:
        events.append([now, float(desired - current)])

    memory_out: dict[str, Any] = {"v": MEMORY_VERSION, "active": float(active_at)}
    if up_win and s.scale_up.stabilization_seconds > 0:
        memory_out["up"] = up_win
    if down_win and s.scale_down.stabilization_seconds > 0:
        memory_out["down"] = down_win
    if events:
        memory_out["ev"] = events
    if rate_mem:
        memory_out["rates"] = rate_mem
    return _finish(spec, obs, desired, reason, memory_out, wanted=bounded)
