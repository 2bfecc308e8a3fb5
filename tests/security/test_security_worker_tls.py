"""A native worker in a pod the operator built, against Redis with TLS and an ACL user.

The Deployment carries the password as a Secret reference and the CA as a mounted Secret; the
worker folds them into its connection. The test resolves that env the way the kubelet would
(Secret values, the mount path pointing at the test's CA) and runs the real worker with it.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from queueworker.operator import api
from queueworker.operator.cluster import deployment
from queueworker.worker.config import redis_url_from
from queueworker.worker.producer import Producer

from support.redis_tls import SecureRedisServer
from support.worker_proc import ROOT, stop, wait_until, worker_env


@pytest.fixture(scope="module")
def secure() -> Iterator[SecureRedisServer]:
    server = SecureRedisServer().start()
    yield server
    server.cleanup()


def _pod_env(server: SecureRedisServer) -> dict[str, str]:
    spec = api.QueueWorkerSpec.model_validate({
        "redis": {"url": f"redis://127.0.0.1:{server.port}/0", "username": server.username,
                  "passwordSecretRef": {"name": "redis-auth", "key": "password"},
                  "tls": {"enabled": True, "caSecretRef": {"name": "redis-ca", "key": "ca.crt"}}},
        "queues": [{"name": "secure"}],
        "template": {"spec": {"containers": [{"name": "w", "image": "i"}]}},
    })
    dep = deployment.build_deployment("secure", "default", "uid-1", spec)
    pod = dep["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert {"name": deployment.CA_VOLUME, "mountPath": deployment.CA_MOUNT_PATH,
            "readOnly": True} in container["volumeMounts"]
    assert {"name": deployment.CA_VOLUME, "secret": {"secretName": "redis-ca"}} in pod["volumes"]
    secrets = {("redis-auth", "password"): server.password}
    env: dict[str, str] = {}
    for item in container["env"]:
        if "value" in item:
            env[item["name"]] = item["value"].replace(deployment.CA_MOUNT_PATH, str(server.dir))
        elif "secretKeyRef" in item["valueFrom"]:
            ref: dict[str, Any] = item["valueFrom"]["secretKeyRef"]
            env[item["name"]] = secrets[(ref["name"], ref["key"])]
        else:
            env[item["name"]] = "secure-pod-1"  # fieldRef metadata.name
    # The password travels only as a Secret reference in the Deployment itself.
    assert server.password not in str(dep)
    return env


def test_worker_runs_jobs_over_tls_with_acl_user(secure: SecureRedisServer) -> None:
    env = _pod_env(secure)
    url = redis_url_from(env["QUEUEWORKER_REDIS_URL"], env)
    assert url.startswith("rediss://")
    producer = Producer(redis.Redis.from_url(url))
    job_id = producer.enqueue("secure", {"n": 1})
    proc = subprocess.Popen(
        [sys.executable, "-m", "queueworker.cli", "worker", "--handler",
         "support.worker_handlers:noop", "--lease", "2"],
        cwd=ROOT, env={**worker_env(env["QUEUEWORKER_REDIS_URL"]), **env},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_until(lambda: (producer.job(job_id) or {}).get("state") == "done",
                   what="the job done over TLS")
    finally:
        code, out = stop(proc)
    assert code == 0
    assert secure.password not in out, "the worker logged the Redis password"
    assert "rediss://qwtest:***@" in out


def test_cli_over_tls_and_wrong_password_is_one_line(secure: SecureRedisServer) -> None:
    env = {**_pod_env(secure), "QUEUEWORKER_REDIS_PASSWORD": "not-the-password"}
    run = subprocess.run([sys.executable, "-m", "queueworker.cli", "enqueue", "secure", "{}"],
                         cwd=ROOT, env={**worker_env(env["QUEUEWORKER_REDIS_URL"]), **env},
                         capture_output=True, text=True, timeout=60)
    assert run.returncode != 0
    assert "authentication failed" in run.stderr
    assert "not-the-password" not in run.stderr
    assert "Traceback" not in run.stderr
