"""Valid specs that can lose or cut jobs: warnings from one pure rule
(validation_warnings), shown by `queueworker validate`, local mode and the operator
(SpecValid/Ready reason CanLoseJobs and one Warning Event)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from queueworker.operator import api
from queueworker.operator.cli_validate import main
from queueworker.operator.validation_warnings import flag_value, shell_wrapped, warnings

from support.operator_cluster import Cluster, wait_for
from support.operator_specs import fast_config, spec


def _spec(layout: str, command: list[str] | None = None, grace: int = 120,
          **container: Any) -> api.QueueWorkerSpec:
    c: dict[str, Any] = {"name": "w", "image": "i", **container}
    if command is not None:
        c["command"] = command
    return api.QueueWorkerSpec.model_validate({
        "redis": {"url": "redis://r:6379/0"}, "queues": [{"name": "q", "layout": layout}],
        "template": {"spec": {"containers": [c]}},
        "drain": {"graceSeconds": grace, "deadlineMarginSeconds": 1}})


def _fields(s: api.QueueWorkerSpec) -> list[str]:
    return [w.field for w in warnings(s)]


def test_grace_against_each_library_stop_timeout() -> None:
    # Sidekiq's -t defaults to 25 s: a 20 s grace SIGKILLs before it pushes jobs back.
    assert _fields(_spec("sidekiq", ["sidekiq"], grace=20)) == ["spec.drain.graceSeconds"]
    assert "25s, default" in str(warnings(_spec("sidekiq", ["sidekiq"], grace=20))[0])
    assert _fields(_spec("sidekiq", ["sidekiq", "-t", "8"], grace=20)) == []
    assert _fields(_spec("sidekiq", ["sidekiq"], args=["--timeout=30"], grace=30)) != []
    # Dramatiq waits 600 s (milliseconds on its command line).
    assert _fields(_spec("dramatiq", ["dramatiq", "tasks"], grace=300)) != []
    assert _fields(_spec("dramatiq", ["dramatiq", "tasks", "--worker-shutdown-timeout",
                                      "20000"], grace=30)) == []
    assert _fields(_spec("laravel", ["php", "artisan", "queue:work", "--timeout=90"],
                         grace=60)) != []
    assert _fields(_spec("laravel", ["php", "artisan", "queue:work"], grace=90)) == []
    # Celery's warm shutdown has no limit of its own: only a declared --time-limit counts.
    assert _fields(_spec("celery", ["celery", "worker"], grace=5)) == []
    assert _fields(_spec("celery", ["celery", "worker", "--time-limit", "600"], grace=60)) != []
    assert _fields(_spec("rq", ["rq", "worker"])) == []
    assert _fields(_spec("native")) == []


def test_blind_layouts_and_shell_wrappers() -> None:
    assert _fields(_spec("list")) == ["spec.queues[0].layout"]
    assert "no view of running jobs" in str(warnings(_spec("list"))[0])
    assert _fields(_spec("arq", ["arq", "tasks.Settings"])) == ["spec.queues[0].layout"]
    wrapped = _spec("rq", ["/bin/sh", "-c", "rq worker q"])
    assert _fields(wrapped) == ["spec.template.spec.containers[0].command"]
    assert "SIGTERM" in str(warnings(wrapped)[0])
    assert not shell_wrapped(["bash", "-c", "cd /app && exec rq worker q"])
    assert shell_wrapped(["bash", "-c", "exec rq worker q; echo done"])
    assert not shell_wrapped(["rq", "worker", "-c", "settings"])
    assert flag_value(["sidekiq", "-t25"], ["-t"]) == "25"


def test_validate_prints_warnings_and_still_passes(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    doc = {"apiVersion": api.API_VERSION, "kind": api.KIND, "metadata": {"name": "sk"},
           "spec": {"redis": {"url": "redis://r:6379/0"},
                    "queues": [{"name": "default", "layout": "sidekiq"}],
                    "drain": {"graceSeconds": 10, "deadlineMarginSeconds": 2},
                    "template": {"spec": {"containers": [
                        {"name": "w", "image": "i", "command": ["sh", "-c", "sidekiq"]}]}}}}
    path = tmp_path / "qw.yaml"
    path.write_text(yaml.safe_dump(doc))
    assert main(["-f", str(path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].endswith("QueueWorker/sk: valid")
    assert len([line for line in out if ": warning: " in line]) == 2


async def test_operator_reports_can_lose_jobs_once(redis_url: str) -> None:
    body = spec(redis_url, ["jobs"], poll=0.5)
    body["queues"] = [{"name": "jobs", "layout": "list"}]
    async with Cluster(config=fast_config()) as c:
        await c.start_operator()
        await c.create_qw("blind", body)
        cond = await wait_for(lambda: (c.condition("blind", "SpecValid") or {}).get("reason")
                              == "CanLoseJobs" and c.condition("blind", "SpecValid"), 15,
                              "SpecValid CanLoseJobs")
        assert cond["status"] == "True"
        assert "no view of running jobs" in cond["message"]
        ready = await wait_for(lambda: c.condition("blind", "Ready"), 5, "Ready")
        assert (ready["status"], ready["reason"]) == ("True", "CanLoseJobs")
        await wait_for(lambda: c.events("blind", reason="CanLoseJobs"), 10, "a Warning Event")
        await c.patch_qw("blind", {"spec": {"queues": [{"name": "jobs", "layout": "native"}]}})
        await wait_for(lambda: (c.condition("blind", "SpecValid") or {}).get("reason")
                       == "Valid", 15, "SpecValid Valid once fixed")
        assert len(c.events("blind", reason="CanLoseJobs")) == 1
