"""The harness's kubelet as a process of its own, for a cluster used by hand.

    PYTHONPATH=tests python -m cluster.kubelet_daemon --dir DIR --node cpu-0 --node gpu-0:4

DIR is a running control plane's directory (cluster.controlplane `--dir`).
Registers the Nodes, runs their pods until SIGTERM or SIGINT, then stops every
pod process (SIGTERM, then SIGKILL after 5 s).
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from pathlib import Path

from cluster.kubeapi import ApiError, KubeApi
from cluster.kubelet import Kubelet
from cluster.pki import PKI


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cluster.kubelet_daemon")
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--node", action="append", default=[], metavar="NAME[:GPUS]")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    state_file = args.dir / "state.json"
    try:
        port = json.loads(state_file.read_text())["api_port"]
    except (OSError, ValueError, KeyError) as err:
        print(f"kubelet: no running control plane in {args.dir}: {err}", file=sys.stderr)
        return 1
    kubelet = Kubelet(KubeApi(f"https://127.0.0.1:{port}", PKI(args.dir / "pki")),
                      args.dir / "kubelet")
    try:
        for node in args.node:
            name, _, gpus = node.partition(":")
            kubelet.add_node(name, int(gpus or 0))
    except (ApiError, ValueError) as err:
        print(f"kubelet: cannot register node: {err}", file=sys.stderr)
        return 1
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    kubelet.start()
    logging.info("kubelet: running pods of %s", ", ".join(sorted(kubelet.nodes)))
    done.wait()
    kubelet.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
