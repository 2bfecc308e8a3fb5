"""Helpers for the depth-reader tests: queue specs and the BullMQ node peer."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from queueworker.engine.types import QueueDepth
from queueworker.observe.layouts import DepthError
from queueworker.operator.api import QueueSpec

ROOT = Path(__file__).resolve().parents[2]
NODE_DIR = ROOT / "tests" / "peers" / "node"


def qspec(name: str, layout: str, **kw: Any) -> QueueSpec:
    return QueueSpec.model_validate({"name": name, "layout": layout, **kw})


def only(results: list[QueueDepth | DepthError]) -> QueueDepth:
    """The one depth read, which must have succeeded."""
    assert len(results) == 1
    assert isinstance(results[0], QueueDepth), results[0]
    return results[0]


def ensure_node() -> None:
    """Install the npm peers (idempotent); fails loudly, never skips."""
    subprocess.run(["bash", str(ROOT / "scripts" / "ensure-node.sh")], check=True, timeout=300)


def bullmq_fill(redis_url: str, queue: str, waiting: int, prioritized: int, delayed: int,
                active: int) -> dict[str, Any]:
    out = subprocess.run(
        ["node", "bullmq_fill.mjs", redis_url, queue, str(waiting), str(prioritized),
         str(delayed), str(active)],
        cwd=NODE_DIR, check=True, capture_output=True, text=True, timeout=60,
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


RUBY_DIR = ROOT / "tests" / "peers" / "ruby"


def ensure_sidekiq() -> None:
    """Install Debian's ruby-sidekiq (idempotent); fails loudly, never skips."""
    subprocess.run(["bash", str(ROOT / "scripts" / "ensure-sidekiq.sh")], check=True, timeout=600)


def sidekiq_push(redis_url: str, *items: dict[str, Any]) -> None:
    """Push jobs with Sidekiq's own client (tests/peers/ruby/sidekiq_push.rb)."""
    subprocess.run(
        ["ruby", "sidekiq_push.rb", json.dumps(list(items))], cwd=RUBY_DIR, check=True,
        env={"PATH": "/usr/bin:/bin", "REDIS_URL": redis_url}, timeout=60,
    )


def sidekiq_server(redis_url: str, *args: str) -> subprocess.Popen[bytes]:
    """A real Sidekiq server running tests/peers/ruby/sidekiq_jobs.rb."""
    return subprocess.Popen(
        ["sidekiq", "-r", "./sidekiq_jobs.rb", *args], cwd=RUBY_DIR,
        env={"PATH": "/usr/bin:/bin", "REDIS_URL": redis_url},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
