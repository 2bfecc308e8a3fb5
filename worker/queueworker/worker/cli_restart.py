"""``queueworker restart``: every native worker on this Redis and prefix finishes its
running jobs and exits 0 (Laravel's queue:restart), so its supervisor starts a
fresh process with the new code: local mode and Kubernetes restart it; under
systemd or supervisord use ``Restart=always`` / ``autorestart=true``. On
Kubernetes a rollout (``kubectl rollout restart``) does the same.

Workers see the request within about a second (their admin watch).
"""

from __future__ import annotations

import argparse
import time

from queueworker.worker import admin
from queueworker.worker.cli_common import CliError, add_redis_options, connect, fail, prefix
from queueworker.worker.heartbeat import read_heartbeats


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="queueworker restart", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_redis_options(p)
    args = p.parse_args(argv)
    try:
        client = connect(args)
    except CliError as exc:
        return fail(str(exc), 3)
    mark = admin.request_restart(client, prefix(args))
    alive = len(read_heartbeats(client, prefix(args)))
    print(f"restart requested at {time.strftime('%H:%M:%SZ', time.gmtime(mark))}: "
          f"{alive} live worker(s) will finish their jobs and exit")
    return 0
