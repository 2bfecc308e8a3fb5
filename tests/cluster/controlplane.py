"""A real Kubernetes control plane on loopback: etcd, kube-apiserver,
kube-controller-manager and kube-scheduler, built by scripts/build-control-plane.sh.

Used by the cluster tests as a fixture and by hand:

    PYTHONPATH=tests python -m cluster.controlplane up     # prints the kubeconfig path
    PYTHONPATH=tests python -m cluster.controlplane down

etcd keeps its data in /dev/shm with fsync off (a test cluster is thrown away,
so durability only costs time). kube-apiserver runs with RBAC, a service-account
issuer and keys, a self-signed serving certificate and an admin client
certificate in system:masters. The controller manager runs only the
controllers a cluster without kubelets needs; node-lifecycle stays off, so the
TaintNodesByCondition admission plugin (whose not-ready taint only that
controller lifts) is disabled as well.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path

from cluster.kubeapi import KubeApi
from cluster.pki import PKI, PKIError, make_pki

ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = ROOT / "scripts" / "build-control-plane.sh"
SERVICE_RANGE = "10.0.0.0/24"
CONTROLLERS = ",".join((
    "deployment-controller", "replicaset-controller", "garbage-collector-controller",
    "namespace-controller", "serviceaccount-controller", "serviceaccount-token-controller",
    "root-ca-certificate-publisher-controller",
    # Fills admin/edit/view from ClusterRoles labelled aggregate-to-* (the chart's).
    "clusterrole-aggregation-controller",
))
# Start order; teardown runs in reverse so the API server never outlives etcd's
# clients mid-write and the controllers never spin on a dead API server.
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")


class ControlPlaneError(RuntimeError):
    """A component could not be built, started or reached."""


def default_dir() -> Path:
    cache = os.environ.get("QUEUEWORKER_CACHE") or str(Path.home() / ".cache" / "queueworker")
    return Path(cache) / "cluster"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def build() -> Path:
    """The bin directory, building the binaries first when they are missing."""
    override = os.environ.get("QUEUEWORKER_CONTROL_PLANE_BIN")
    if override:
        return Path(override)
    # stderr passes through: a cold build takes minutes and says what it does.
    proc = subprocess.run(["bash", str(BUILD_SCRIPT)], stdout=subprocess.PIPE, text=True,
                          check=False)
    if proc.returncode != 0:
        raise ControlPlaneError(f"{BUILD_SCRIPT.name} failed (exit {proc.returncode})")
    return Path(proc.stdout.strip().splitlines()[-1])


@dataclass
class State:
    """What `down` needs to find the processes again; saved as state.json."""

    workdir: str
    bin_dir: str
    etcd_dir: str
    etcd_port: int = field(default_factory=free_port)
    etcd_peer_port: int = field(default_factory=free_port)
    api_port: int = field(default_factory=free_port)
    pids: dict[str, int] = field(default_factory=dict)
    argv0: dict[str, str] = field(default_factory=dict)  # to recognise our pids later

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.api_port}"


def _etcd_args(st: State) -> list[str]:
    client = f"http://127.0.0.1:{st.etcd_port}"
    peer = f"http://127.0.0.1:{st.etcd_peer_port}"
    return [
        "--name=qw", f"--data-dir={st.etcd_dir}", f"--listen-client-urls={client}",
        f"--advertise-client-urls={client}", f"--listen-peer-urls={peer}",
        f"--initial-advertise-peer-urls={peer}", f"--initial-cluster=qw={peer}",
        "--unsafe-no-fsync=true", "--watch-progress-notify-interval=5s", "--log-level=warn",
    ]


def _apiserver_args(st: State, pki: PKI) -> list[str]:
    return [
        f"--etcd-servers=http://127.0.0.1:{st.etcd_port}", f"--secure-port={st.api_port}",
        "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
        f"--cert-dir={pki.dir}", f"--tls-cert-file={pki.serving_crt}",
        f"--tls-private-key-file={pki.serving_key}", f"--client-ca-file={pki.ca_crt}",
        "--authorization-mode=RBAC", f"--service-cluster-ip-range={SERVICE_RANGE}",
        "--allow-privileged=true", f"--service-account-issuer={st.server}",
        f"--service-account-key-file={pki.sa_pub}",
        f"--service-account-signing-key-file={pki.sa_key}",
        "--disable-admission-plugins=TaintNodesByCondition",
        # No kubelet serves the `kubernetes` Service's loopback endpoint.
        "--endpoint-reconciler-type=none",
        # Lighter on 2 cores; no test here depends on request fairness.
        "--enable-priority-and-fairness=false", "--profiling=false",
    ]


def _kcm_args(kubeconfig: Path, pki: PKI) -> list[str]:
    return [
        f"--kubeconfig={kubeconfig}", "--leader-elect=false", "--secure-port=0",
        f"--controllers={CONTROLLERS}", f"--service-account-private-key-file={pki.sa_key}",
        f"--root-ca-file={pki.ca_crt}", "--profiling=false",
    ]


def _scheduler_args(kubeconfig: Path) -> list[str]:
    return [f"--kubeconfig={kubeconfig}", "--leader-elect=false", "--secure-port=0",
            "--profiling=false"]


def write_kubeconfig(path: Path, server: str, pki: PKI) -> Path:
    """A self-contained admin kubeconfig (JSON is valid kubeconfig YAML)."""
    def b64(p: Path) -> str:
        return base64.b64encode(p.read_bytes()).decode()

    config = {
        "apiVersion": "v1", "kind": "Config", "current-context": "queueworker-test",
        "clusters": [{"name": "queueworker-test", "cluster": {
            "server": server, "certificate-authority-data": b64(pki.ca_crt)}}],
        "users": [{"name": "admin", "user": {
            "client-certificate-data": b64(pki.admin_crt),
            "client-key-data": b64(pki.admin_key)}}],
        "contexts": [{"name": "queueworker-test", "context": {
            "cluster": "queueworker-test", "user": "admin"}}],
    }
    path.write_text(json.dumps(config, indent=2))
    path.chmod(0o600)
    return path


class ControlPlane:
    """Start, probe and stop the four components; `state.json` lets another
    process (`python -m cluster.controlplane down`) stop them later."""

    def __init__(self, workdir: Path, bin_dir: Path | None = None) -> None:
        self.workdir = workdir
        self.bin_dir = bin_dir
        self.state: State | None = None
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.args: dict[str, tuple[list[str], str, dict[str, str] | None]] = {}

    @property
    def pki(self) -> PKI:
        return PKI(self.workdir / "pki")

    @property
    def kubeconfig(self) -> Path:
        return self.workdir / "admin.kubeconfig"

    @property
    def state_file(self) -> Path:
        return self.workdir / "state.json"

    def _spawn(self, name: str, args: list[str], argv0: str = "",
               env: dict[str, str] | None = None) -> None:
        assert self.state is not None
        binary = argv0 or str(Path(self.state.bin_dir) / name)
        with (self.workdir / "logs").joinpath(f"{name}.log").open("ab") as log:
            try:
                proc = subprocess.Popen(
                    [binary, *args], stdout=log, stderr=subprocess.STDOUT, env=env,
                    stdin=subprocess.DEVNULL, start_new_session=True)
            except OSError as err:
                raise ControlPlaneError(f"cannot start {binary}: {err}") from err
        self.procs[name] = proc
        self.args[name] = (args, argv0, env)
        self.state.pids[name] = proc.pid
        self.state.argv0[name] = binary
        self.state_file.write_text(json.dumps(asdict(self.state), indent=2))

    def _log_tail(self, name: str) -> str:
        path = self.workdir / "logs" / f"{name}.log"
        lines = path.read_text(errors="replace").splitlines() if path.exists() else []
        return "\n".join(lines[-15:])

    def _wait(self, name: str, probe: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            proc = self.procs[name]
            if proc.poll() is not None:
                raise ControlPlaneError(f"{name} exited with {proc.returncode}:\n"
                                        f"{self._log_tail(name)}")
            if self.get(probe) == 200:
                return
            time.sleep(0.2)
        raise ControlPlaneError(f"{name} not ready after {timeout:.0f}s ({probe}):\n"
                                f"{self._log_tail(name)}")

    def api(self) -> KubeApi:
        """A client of this API server as its admin."""
        assert self.state is not None
        return KubeApi(self.state.server, self.pki)

    def get(self, path: str) -> int:
        """HTTP status of a GET (etcd by plain HTTP, the API server as admin); 0 if down."""
        assert self.state is not None
        if path.startswith("etcd:"):
            url, ctx = f"http://127.0.0.1:{self.state.etcd_port}{path[5:]}", None
        else:
            ctx = ssl.create_default_context(cafile=str(self.pki.ca_crt))
            ctx.load_cert_chain(str(self.pki.admin_crt), str(self.pki.admin_key))
            url = f"{self.state.server}{path}"
        try:
            with urllib.request.urlopen(url, timeout=2, context=ctx) as resp:
                status: int = resp.status
                return status
        except urllib.error.HTTPError as err:
            return err.code
        except (urllib.error.URLError, OSError):
            return 0

    def start(self, timeout: float = 60) -> ControlPlane:
        """Bring every component up; raises ControlPlaneError with the log tail."""
        bin_dir = self.bin_dir or build()
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "logs").mkdir(exist_ok=True)
        shm = Path("/dev/shm")
        etcd_root = shm if shm.is_dir() and os.access(shm, os.W_OK) else self.workdir
        etcd_dir = tempfile.mkdtemp(prefix="qw-etcd-", dir=etcd_root)
        self.state = State(workdir=str(self.workdir), bin_dir=str(bin_dir), etcd_dir=etcd_dir)
        try:
            make_pki(self.pki.dir)
            write_kubeconfig(self.kubeconfig, self.state.server, self.pki)
            self._spawn("etcd", _etcd_args(self.state))
            self._wait("etcd", "etcd:/health", timeout)
            self._spawn("kube-apiserver", _apiserver_args(self.state, self.pki))
            self._wait("kube-apiserver", "/readyz", timeout)
            self._spawn("kube-controller-manager", _kcm_args(self.kubeconfig, self.pki))
            self._spawn("kube-scheduler", _scheduler_args(self.kubeconfig))
            # The serviceaccount controller makes `default` in every namespace:
            # seeing it proves the controller manager runs and can write.
            self._wait("kube-controller-manager",
                       "/api/v1/namespaces/default/serviceaccounts/default", timeout)
            if self.procs["kube-scheduler"].poll() is not None:
                raise ControlPlaneError("kube-scheduler exited:\n"
                                        + self._log_tail("kube-scheduler"))
        except (ControlPlaneError, PKIError):
            self.stop()
            raise
        return self

    def halt(self, name: str, kill: bool = False) -> None:
        """Stop one component (SIGTERM, or SIGKILL: a crash); `resume` starts it again."""
        proc = self.procs[name]
        if kill:
            proc.kill()
            proc.wait()
        else:
            _terminate(proc.pid, proc, 10)

    def resume(self, name: str, timeout: float = 60) -> None:
        """Start a halted component with its arguments (same ports and data) and wait
        until it answers (etcd: /health; the API server: /readyz, which needs etcd)."""
        args, argv0, env = self.args[name]
        self._spawn(name, args, argv0, env)
        probe = {"etcd": "etcd:/health", "kube-apiserver": "/readyz"}.get(name)
        if probe:
            self._wait(name, probe, timeout)

    def restart(self, name: str, kill: bool = False, timeout: float = 60) -> None:
        self.halt(name, kill)
        self.resume(name, timeout)

    def stop(self, grace: float = 10) -> None:
        """Stop the components in reverse start order and delete the etcd data."""
        state = self.state or self._load()
        if state is None:
            return
        for name in ("kubelet", *reversed(COMPONENTS)):
            pid = state.pids.get(name)
            # A pid from a stale state.json may belong to another process by now.
            if pid is not None and _runs(pid, state.argv0.get(name, "")):
                _terminate(pid, self.procs.get(name), grace)
        shutil.rmtree(state.etcd_dir, ignore_errors=True)
        self.state_file.unlink(missing_ok=True)
        self.state, self.procs = None, {}

    def _load(self) -> State | None:
        if not self.state_file.exists():
            return None
        return State(**json.loads(self.state_file.read_text()))

    def running(self) -> bool:
        """True when state.json names live processes and the API server answers."""
        self.state = self._load()
        if self.state is None:
            return False
        alive = all(_alive(pid) and _runs(pid, self.state.argv0.get(name, ""))
                    for name, pid in self.state.pids.items())
        return alive and set(COMPONENTS) <= set(self.state.pids) and self.get("/readyz") == 200

    def start_kubelet(self, nodes: list[str], timeout: float = 30) -> None:
        """The harness's kubelet as a process of its own (cluster.kubelet_daemon),
        for a cluster used by hand; NODES are `name` or `name:gpus`."""
        assert self.state is not None
        args = ["-m", "cluster.kubelet_daemon", f"--dir={self.workdir}",
                *(f"--node={n}" for n in nodes)]
        env = {**os.environ, "PYTHONPATH": str(ROOT / "tests")}
        self._spawn("kubelet", args, argv0=sys.executable, env=env)
        for node in nodes:
            self._wait("kubelet", f"/api/v1/nodes/{node.split(':')[0]}", timeout)


def _runs(pid: int, binary: str) -> bool:
    """True when process `pid` was started from `binary`."""
    try:
        argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0", 1)[0]
    except OSError:
        return False
    return argv0.decode(errors="replace") == str(binary)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    # A zombie (state Z) has exited but not been reaped by its parent.
    return not (stat.exists() and stat.read_text().rsplit(")", 1)[-1].split()[0] == "Z")


def _terminate(pid: int, proc: subprocess.Popen[bytes] | None, grace: float) -> None:
    """SIGTERM, wait up to `grace` seconds, then SIGKILL."""
    with_proc = proc is not None and proc.pid == pid
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if (proc.poll() is not None) if (with_proc and proc) else not _alive(pid):
            return
        time.sleep(0.1)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    if with_proc and proc:
        proc.wait()


if __name__ == "__main__":
    from cluster.cli import main

    sys.exit(main())
