"""Seeded synthetic job traces for `queueworker simulate`.

    .venv/bin/python benchmarks/traces/generate.py [--seed 7] [--out benchmarks/traces]

Writes one CSV per scenario (arrival,run_seconds,queue), always the same
bytes for the same seed:

- steady:  Poisson arrivals, 1.5 jobs/s, run times lognormal around 4 s, 2 h.
- bursts:  a trickle (0.05/s) plus a burst of 400 jobs within 20 s every 20 min, 3 h.
- diurnal: a day compressed into 6 h: rate swings from 0.05 to 3 jobs/s and back.
- gpu:     GPU jobs of 2-10 minutes arriving in clusters, 4 h.
- quiet:   a rare job every ~20 minutes, 30 s each, 12 h.

Issue 14's workloads (replayed by benchmarks/engine/run_simulations.py; no CSV
is shipped for them: `--only NAME` writes one):

- imagegen:  an image-generation day compressed into 6 h: a morning and a
             larger afternoon peak (up to 0.6 jobs/s), jobs of 20-90 s.
- audio:     GPU audio bursts, 4 h: a user drops 5-40 files at once (about every
             15 minutes), each minutes long (lognormal around 4 min, 1-12 min);
             the worker's job timeout is 2 x duration + 60 s, two jobs per pod.
- email:     an e-mail campaign, 3 h: a trickle (0.5/s) plus three spikes of
             5,000 sub-second jobs within a minute.
- nightly:   a nightly batch: 4,000 jobs of about 6 s enqueued within 30 s,
             then nothing for 2 h.
- quietday:  a quiet queue over 24 h: a clump of 1-3 jobs about every
             40 minutes, 2-120 s each.
"""

from __future__ import annotations

import argparse
import math
import random
from collections.abc import Callable, Iterator
from pathlib import Path

Row = tuple[float, float, str]


def poisson(rng: random.Random, rate: Callable[[float], float], peak: float,
            end: float) -> Iterator[float]:
    """Non-homogeneous Poisson arrivals by thinning (rate(t) <= peak)."""
    t = 0.0
    while True:
        t += rng.expovariate(peak)
        if t >= end:
            return
        if rng.random() * peak <= rate(t):
            yield t


def lognormal(rng: random.Random, median: float, sigma: float, cap: float) -> float:
    return min(cap, median * math.exp(rng.gauss(0, sigma)))


def steady(rng: random.Random) -> list[Row]:
    return [(t, lognormal(rng, 4, 0.6, 120), "default")
            for t in poisson(rng, lambda t: 1.5, 1.5, 7200)]


def bursts(rng: random.Random) -> list[Row]:
    rows = [(t, lognormal(rng, 8, 0.5, 120), "default")
            for t in poisson(rng, lambda t: 0.05, 0.05, 10800)]
    for start in range(600, 10800, 1200):
        rows += [(start + rng.uniform(0, 20), lognormal(rng, 8, 0.5, 120), "default")
                 for _ in range(400)]
    return rows


def diurnal(rng: random.Random) -> list[Row]:
    day = 6 * 3600.0

    def rate(t: float) -> float:
        return 0.05 + 2.95 * (0.5 - 0.5 * math.cos(2 * math.pi * t / day)) ** 2

    return [(t, lognormal(rng, 5, 0.7, 300), "default") for t in poisson(rng, rate, 3.0, day)]


def gpu(rng: random.Random) -> list[Row]:
    rows: list[Row] = []
    for t in poisson(rng, lambda t: 1 / 600, 1 / 600, 4 * 3600):
        for _ in range(rng.randint(1, 8)):  # a user submits a batch
            rows.append((t + rng.uniform(0, 30), rng.uniform(120, 600), "render"))
    return rows


def quiet(rng: random.Random) -> list[Row]:
    return [(t, 30.0, "default") for t in poisson(rng, lambda t: 1 / 1200, 1 / 1200, 12 * 3600)]


def imagegen(rng: random.Random) -> list[Row]:
    day = 6 * 3600.0

    def bump(t: float, at: float, width: float) -> float:
        return math.exp(-(((t - at) / width) ** 2))

    def rate(t: float) -> float:
        return 0.01 + 0.35 * bump(t, 0.3 * day, 0.1 * day) + 0.6 * bump(t, 0.65 * day, 0.12 * day)

    return [(t, rng.uniform(20, 90), "default") for t in poisson(rng, rate, 0.62, day)]


def audio(rng: random.Random) -> list[Row]:
    rows: list[Row] = []
    for t in poisson(rng, lambda t: 1 / 900, 1 / 900, 4 * 3600):
        for _ in range(rng.randint(5, 40)):
            run = min(720.0, max(60.0, lognormal(rng, 240, 0.5, 720)))
            rows.append((t + rng.uniform(0, 60), run, "audio"))
    return rows


def email(rng: random.Random) -> list[Row]:
    rows = [(t, lognormal(rng, 0.2, 0.4, 0.9), "default")
            for t in poisson(rng, lambda t: 0.5, 0.5, 3 * 3600)]
    for start in (1800, 5400, 9000):
        rows += [(start + rng.uniform(0, 60), lognormal(rng, 0.2, 0.4, 0.9), "default")
                 for _ in range(5000)]
    return rows


def nightly(rng: random.Random) -> list[Row]:
    return [(rng.uniform(0, 30), lognormal(rng, 6, 0.5, 60), "default") for _ in range(4000)]


def quietday(rng: random.Random) -> list[Row]:
    rows: list[Row] = []
    for t in poisson(rng, lambda t: 1 / 2400, 1 / 2400, 24 * 3600):
        rows += [(t + rng.uniform(0, 10), rng.uniform(2, 120), "default")
                 for _ in range(rng.randint(1, 3))]
    return rows


SCENARIOS: dict[str, Callable[[random.Random], list[Row]]] = {
    "steady": steady, "bursts": bursts, "diurnal": diurnal, "gpu": gpu, "quiet": quiet,
    "imagegen": imagegen, "audio": audio, "email": email, "nightly": nightly,
    "quietday": quietday,
}
SHIPPED = ("steady", "bursts", "diurnal", "gpu", "quiet")  # CSVs kept in this folder


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", default=str(Path(__file__).parent))
    ap.add_argument("--only", choices=sorted(SCENARIOS), default=None,
                    help="write this scenario only (default: the shipped ones)")
    args = ap.parse_args()
    for name in [args.only] if args.only else SHIPPED:
        make = SCENARIOS[name]
        rng = random.Random(f"{args.seed}-{name}")
        rows = sorted(make(rng))
        path = Path(args.out) / f"{name}.csv"
        with path.open("w") as f:
            f.write(f"# {name}: generated by benchmarks/traces/generate.py --seed {args.seed}\n")
            f.write("arrival,run_seconds,queue\n")
            for t, run, q in rows:
                f.write(f"{t:.3f},{run:.3f},{q}\n")
        print(f"{path}: {len(rows)} jobs")


if __name__ == "__main__":
    main()
