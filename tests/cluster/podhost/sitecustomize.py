"""A pod's host name for the Python processes the harness's kubelet runs (cluster/kubelet.py).

A container runtime gives each pod its own UTS namespace, so `socket.gethostname()`
there is the pod's hostname (its name unless the spec sets `hostname`). The harness's
kubelet runs pods as plain local processes, which would all report this machine's name:
other libraries' workers record that name (RQ's worker hash `hostname`, Celery's
`celery@<host>`) and the operator's busy adapters map it to a pod (observe/busy/).
The kubelet puts this folder first on a pod's PYTHONPATH, so Python imports this module
at start-up (the `site` module's sitecustomize hook), and sets QUEUEWORKER_POD_HOSTNAME;
only then is the host name replaced, in that process and its children (RQ's work horse).
"""

from __future__ import annotations

import os
import socket

_POD_HOSTNAME = os.environ.get("QUEUEWORKER_POD_HOSTNAME")


def _gethostname() -> str:
    return _POD_HOSTNAME or ""


if _POD_HOSTNAME:
    socket.gethostname = _gethostname
