"""The container image, built from the repository's Dockerfile and run.

scripts/build-image.sh builds it with podman on a base made from Debian packages
(no container registry is reachable here; docs/image.md). Each test then runs
the image as a container: its commands, its user, the worker against a Redis on
loopback, and the operator against the real control plane of tests/cluster.
Named e2e_*.py so the unit run does not collect it; `make image-test` (and
`make e2e`) pass it to pytest by path. The build needs root, as CI has.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import tomllib
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cluster.controlplane import ControlPlane
from cluster.kubectl import Kubectl, kubectl_binary
from support.redis_server import RedisServer

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "build-image.sh"
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
UID = 10001
# A cold build (tools, debootstrap, pip) took 61 s here; the margin is for a loaded CI machine.
pytestmark = pytest.mark.timeout(900)


@dataclass(frozen=True)
class Image:
    name: str
    id: str
    size: int
    base: str
    run_flags: list[str]

    def run(self, *args: str, flags: tuple[str, ...] = (), timeout: float = 60
            ) -> subprocess.CompletedProcess[str]:
        """`podman run --rm` of this image, with the flags this host needs. A container
        still running at the timeout is removed (killing the podman client would leave it)
        and the test fails with its log."""
        name = f"qw-image-test-{uuid.uuid4().hex[:8]}"
        cmd = ["podman", "run", "--rm", "--name", name, *self.run_flags, *flags, self.name,
               *args]
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                                  check=False)
        except subprocess.TimeoutExpired:
            log = subprocess.run(["podman", "logs", name], capture_output=True, text=True,
                                 timeout=30, check=False)
            subprocess.run(["podman", "rm", "-f", "-t", "0", name], capture_output=True,
                           timeout=60, check=False)
            raise AssertionError(f"{' '.join(args)}: still running after {timeout}s; log:\n"
                                 f"{(log.stdout + log.stderr)[-3000:]}") from None


@pytest.fixture(scope="module")
def image() -> Image:
    started = time.monotonic()
    proc = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True,
                          timeout=840, check=False, cwd=ROOT)
    assert proc.returncode == 0, f"build-image.sh failed:\n{proc.stdout[-3000:]}\n" \
                                 f"{proc.stderr[-6000:]}"
    found = re.search(r"^image (\S+) id (\w+) size (\d+)$", proc.stdout, re.M)
    assert found, proc.stdout
    base = re.search(r"^== base (localhost/\S+?):? ", proc.stdout, re.M)
    assert base, proc.stdout
    flags = subprocess.run(["bash", str(SCRIPT), "--run-flags"], capture_output=True,
                           text=True, check=True).stdout.split()
    print(f"\nimage {found[1]} {int(found[3]) / 1e6:.0f} MB, "
          f"built in {time.monotonic() - started:.0f} s")
    return Image(found[1], found[2], int(found[3]), base[1], flags)


def test_version_help_and_the_default_command(image: Image) -> None:
    version = image.run("--version")
    assert (version.returncode, version.stdout) == (0, f"queueworker {VERSION}\n")
    helped = image.run("--help")
    assert helped.returncode == 0, helped.stderr
    for command in ("operator", "worker", "validate", "enqueue"):
        assert re.search(rf"^  {command} ", helped.stdout, re.M), helped.stdout
    # CMD ["--help"]: the bare image prints the same usage.
    assert image.run().stdout == helped.stdout
    operator = image.run("operator", "--help")
    assert operator.returncode == 0, operator.stderr
    assert "--namespace" in operator.stdout
    assert "--standalone" in operator.stdout
    wrong = image.run("no-such-command")
    assert wrong.returncode == 2
    assert "unknown command 'no-such-command'" in wrong.stderr


def test_runs_as_the_numeric_non_root_user(image: Image) -> None:
    user = subprocess.run(["podman", "image", "inspect", "--format", "{{.Config.User}}",
                           image.name], capture_output=True, text=True, check=True)
    assert user.stdout.strip() == f"{UID}:{UID}"
    ident = image.run(flags=("--entrypoint", "id"))
    assert ident.stdout.strip() == f"uid={UID}(queueworker) gid={UID}(queueworker) " \
                                   f"groups={UID}(queueworker)"
    # The code is root's: the worker's user cannot change it, only its own /app.
    shell = ("--entrypoint", "sh")
    code = image.run("-c", "touch /opt/queueworker/bin/x", flags=shell)
    assert code.returncode != 0
    assert "Permission denied" in code.stderr
    app = image.run("-c", "touch /app/x && echo ok", flags=shell)
    assert app.stdout.strip() == "ok", app.stderr


def test_the_image_holds_the_runtime_only(image: Image) -> None:
    # Debian's python3 with the venv on top; measured 204 MB (docs/image.md).
    assert 100e6 < image.size < 260e6, image.size
    shell = ("--entrypoint", "sh")
    # No source tree, no build-time host files (they were bind mounts of the RUN steps).
    absent = image.run("-c", "for p in /src /etc/pip.conf /root/.cache/pip; do "
                             "test -e $p && echo $p; done; true", flags=shell)
    assert (absent.returncode, absent.stdout) == (0, "")
    # The CA bundle is Debian's, as in the base: the host's (mounted for pip) stayed out.
    digest = ("--entrypoint", "sha256sum")
    bundle = "/etc/ssl/certs/ca-certificates.crt"
    in_base = subprocess.run(["podman", "run", "--rm", *image.run_flags, *digest, image.base,
                              bundle], capture_output=True, text=True, timeout=60, check=True)
    assert image.run(bundle, flags=digest).stdout == in_base.stdout
    python = image.run("-c", "python --version; command -v queueworker", flags=shell)
    lines = python.stdout.splitlines()
    assert lines[0].startswith("Python 3.11."), python.stdout
    assert lines[1:] == ["/opt/queueworker/bin/queueworker"]


HANDLER = '''
import os
import sys


def handle(payload):
    if payload.get("fail"):
        raise RuntimeError("asked to fail")
    # Proof that the job ran in the image, as its user, in its virtualenv.
    if os.getuid() != 10001 or sys.prefix != "/opt/queueworker":
        raise RuntimeError(f"ran as {os.getuid()} in {sys.prefix}")
'''


def host_cli(*args: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "queueworker.cli", *args],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_worker_in_the_image_consumes_jobs_from_redis_on_loopback(
        image: Image, tmp_path: Path) -> None:
    jobs = tmp_path / "jobs"
    jobs.mkdir()
    (jobs / "imgjobs.py").write_text(HANDLER)
    for path in (tmp_path, jobs):  # readable by uid 10001 (pytest makes them 0700)
        path.chmod(0o755)
    server = RedisServer().start()
    try:
        url = server.url
        ok = [host_cli("enqueue", "--redis-url", url, "img", json.dumps({"n": n})).strip()
              for n in range(5)]
        bad = host_cli("enqueue", "--redis-url", url, "--max-tries", "1", "img",
                       '{"fail": true}').strip()
        worker = image.run("worker", "--redis-url", url, "--queue", "img",
                           "--handler", "imgjobs:handle", "--stop-when-empty",
                           flags=("--network", "host", "-v", f"{jobs}:/jobs:ro",
                                  "-e", "PYTHONPATH=/jobs"))
        assert worker.returncode == 0, worker.stdout + worker.stderr
        logs = worker.stdout + worker.stderr
        assert "event=worker.start" in logs
        assert "event=worker.drain reason=empty" in logs
        states = {job: json.loads(host_cli("job", "--redis-url", url, job))["state"]
                  for job in [*ok, bad]}
        assert states == {**dict.fromkeys(ok, "done"), bad: "failed"}
    finally:
        server.cleanup()


NAMESPACE = "qw-image"


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    plane = ControlPlane(tmp_path_factory.mktemp("cluster")).start()
    try:
        yield plane
    finally:
        plane.stop()


def wait_for(what: str, check: Callable[[], Any], timeout: float, logs: Callable[[], str]
             ) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"no {what} after {timeout}s; operator log:\n{logs()[-4000:]}")
        time.sleep(0.3)
    return value


def test_operator_in_the_image_against_the_real_control_plane(
        image: Image, plane: ControlPlane, tmp_path: Path) -> None:
    kubectl = Kubectl(kubectl_binary(), plane.kubeconfig)
    kubectl.run("apply", "-f", str(ROOT / "crds" / "queueworker.yaml"))
    kubectl.run("wait", "--for=condition=Established", "--timeout=30s",
                "crd/queueworkers.queueworker.dev")
    kubectl.run("create", "namespace", NAMESPACE)
    # The admin kubeconfig (certificates inline), readable by the image's user.
    config = tmp_path / "kubeconfig"
    config.write_bytes(plane.kubeconfig.read_bytes())
    for path in (tmp_path, config):
        path.chmod(0o755 if path.is_dir() else 0o644)
    server = RedisServer().start()
    name = f"qw-image-operator-{uuid.uuid4().hex[:8]}"
    started = subprocess.run(
        ["podman", "run", "-d", "--name", name, *image.run_flags, "--network", "host",
         "-v", f"{config}:/kube/config:ro", "-e", "KUBECONFIG=/kube/config", image.name,
         "operator", "--standalone", "--namespace", NAMESPACE, "--metrics-port", "0",
         "--status-refresh", "1", "--log-format", "plain"],
        capture_output=True, text=True, timeout=60, check=False)
    assert started.returncode == 0, started.stderr

    def logs() -> str:
        out = subprocess.run(["podman", "logs", name], capture_output=True, text=True,
                             timeout=30, check=False)
        return out.stdout + out.stderr

    def qw() -> dict[str, Any]:
        out = kubectl.run("get", "qw", "burst", "-n", NAMESPACE, "-o", "json").stdout
        got: dict[str, Any] = json.loads(out)
        return got

    try:
        for n in range(3):
            host_cli("enqueue", "--redis-url", server.url, "burst", json.dumps({"n": n}))
        spec = {"redis": {"url": server.url}, "queues": [{"name": "burst"}],
                "scaling": {"minReplicas": 0, "maxReplicas": 2, "pollIntervalSeconds": 0.5},
                "template": {"spec": {"containers": [{
                    "name": "worker", "image": image.name,
                    "args": ["queueworker", "worker", "--handler", "app.jobs:handle"]}]}}}
        manifest = {"apiVersion": "queueworker.dev/v1alpha1", "kind": "QueueWorker",
                    "metadata": {"name": "burst", "namespace": NAMESPACE}, "spec": spec}
        kubectl.run("create", "-f", "-", stdin=json.dumps(manifest))
        # The backlog read from Redis through the host network, written to status.
        wait_for("status.backlog == 3", lambda: qw().get("status", {}).get("backlog") == 3,
                 60, logs)

        def deployment() -> dict[str, Any] | None:
            out = kubectl.run("get", "deployment", "burst", "-n", NAMESPACE, "-o", "json",
                              check=False)
            return json.loads(out.stdout) if out.returncode == 0 else None

        dep = wait_for("a scaled-up Deployment",
                       lambda: (d := deployment()) and d["spec"]["replicas"] >= 1 and d, 60, logs)
        assert dep["spec"]["template"]["spec"]["containers"][0]["image"] == image.name
        owner = dep["metadata"]["ownerReferences"][0]
        assert (owner["kind"], owner["name"]) == ("QueueWorker", "burst")
        # The operator's finalizer is released by the operator in the image.
        kubectl.run("delete", "qw", "burst", "-n", NAMESPACE, "--wait=true", "--timeout=60s",
                    timeout=90)
        assert "Traceback" not in logs()
    finally:
        subprocess.run(["podman", "stop", "-t", "10", name], capture_output=True, timeout=60,
                       check=False)
        print(logs()[-2000:])
        subprocess.run(["podman", "rm", "-f", name], capture_output=True, timeout=60,
                       check=False)
        kubectl.run("delete", "namespace", NAMESPACE, "--wait=false", check=False)
        server.cleanup()
