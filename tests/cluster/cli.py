"""`python -m cluster.controlplane up|down|kubeconfig` (run with PYTHONPATH=tests).

`up` starts the control plane (building it first if needed) and, with
`--node NAME[:GPUS]`, the harness's kubelet with those fake Nodes; it prints the
admin kubeconfig's path and is a no-op when the cluster already runs. `down`
stops everything and deletes etcd's data.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from cluster.controlplane import ControlPlane, ControlPlaneError, default_dir
from cluster.pki import PKIError


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m cluster.controlplane",
                                     description="A local Kubernetes control plane for tests.")
    parser.add_argument("command", choices=("up", "down", "kubeconfig"))
    parser.add_argument("--dir", type=Path, default=default_dir(),
                        help="where certificates, logs and state go (default: %(default)s)")
    parser.add_argument("--node", action="append", default=[], metavar="NAME[:GPUS]",
                        help="with `up`: run the harness's kubelet with this fake Node "
                             "(repeatable), e.g. --node cpu-0 --node gpu-0:4")
    args = parser.parse_args(argv)
    for node in args.node:
        name, _, gpus = node.partition(":")
        if not name or (gpus and not gpus.isdigit()):
            parser.error(f"--node {node!r}: expected NAME or NAME:GPUS (a whole number)")
    return args


def up(plane: ControlPlane, nodes: list[str]) -> None:
    if plane.running():
        return
    plane.stop()  # leftovers of a crashed run
    started = time.monotonic()
    plane.start()
    if nodes:
        try:
            plane.start_kubelet(nodes)
        except ControlPlaneError:
            plane.stop()
            raise
    print(f"controlplane: up in {time.monotonic() - started:.1f}s; "
          f"export KUBECONFIG={plane.kubeconfig}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    plane = ControlPlane(args.dir)
    try:
        if args.command == "down":
            plane.stop()
            print(f"controlplane: stopped ({args.dir})", file=sys.stderr)
            return 0
        if args.command == "up":
            up(plane, args.node)
        elif not plane.kubeconfig.exists() or not plane.running():
            print("controlplane: not running; run `up` first", file=sys.stderr)
            return 1
    except (ControlPlaneError, PKIError) as err:
        print(f"controlplane: {err}", file=sys.stderr)
        return 1
    print(plane.kubeconfig)
    return 0


if __name__ == "__main__":
    sys.exit(main())
