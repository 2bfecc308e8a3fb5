"""``queueworker schedule``: the schedules workers registered (``queueworker worker --schedules``).

    queueworker schedule list [--json]
    queueworker schedule show NAME
    queueworker schedule pause NAME      # no ticks until resumed
    queueworker schedule resume NAME     # from the next tick after now (missed ones dropped)
    queueworker schedule trigger NAME    # enqueue its job now; the next tick is unchanged
    queueworker schedule remove NAME     # forget it (a worker that defines it adds it again)
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from queueworker.worker.cli_common import CliError, add_redis_options, connect, fail, prefix
from queueworker.worker.cli_queue import redis_parent
from queueworker.worker.schedule_store import ScheduleStore
from queueworker.worker.schedules import ScheduleError


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="queueworker schedule", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_redis_options(p)
    sub = p.add_subparsers(dest="action", required=True)
    common = [redis_parent()]
    ls = sub.add_parser("list", help="every schedule with its next and last tick",
                        parents=common)
    ls.add_argument("--json", action="store_true")
    for verb, text in (("show", "one schedule as JSON"), ("pause", "stop its ticks"),
                       ("resume", "tick again, from the next tick after now"),
                       ("trigger", "enqueue its job now"), ("remove", "forget it")):
        sub.add_parser(verb, help=text, parents=common).add_argument("name")
    return p


def _when(t: Any) -> str:
    if t is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(float(t)))


def _list(store: ScheduleStore, as_json: bool) -> int:
    rows = store.list()
    if as_json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("no schedules (a worker started with --schedules registers them)")
    for r in rows:
        state = "paused" if r["paused"] else f"next {_when(r['next_due'])}"
        print(f"{r['name']:<24} {r['queue']:<14} {r['when']:<32} {state:<28} "
              f"last {_when(r['last_due'])}  ticks={r['ticks']} skipped={r['skipped']}")
    return 0


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    try:
        store = ScheduleStore(connect(args), prefix(args))
    except CliError as exc:
        return fail(str(exc), 3)
    except ScheduleError as exc:
        return fail(str(exc), 2)
    if args.action == "list":
        return _list(store, args.json)
    name = args.name
    try:
        if args.action == "show":
            info = store.show(name)
            if info is None:
                return fail(f"no schedule {name!r}")
            print(json.dumps(info, indent=2, sort_keys=True))
        elif args.action == "pause":
            if not store.pause(name):
                return fail(f"no schedule {name!r}")
            print(f"paused {name}")
        elif args.action == "resume":
            store.resume(name)
            print(f"resumed {name}; next tick {_when(store.show(name)['next_due'])}")  # type: ignore[index]
        elif args.action == "trigger":
            print(store.trigger(name))
        elif not store.remove(name):
            return fail(f"no schedule {name!r}")
        else:
            print(f"removed {name}")
    except ScheduleError as exc:
        return fail(str(exc))
    return 0
