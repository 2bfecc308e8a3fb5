"""The `helm test` pod's script, run here with curl against real endpoints."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator

import pytest

from support.chart_prometheus import Prometheus
from support.chart_tools import NAMESPACE, one, render, tool
from support.redis_server import free_port


def _script(url: str) -> str:
    """The test pod's shell script, pointed at `url` instead of the in-cluster Service."""
    docs = render()
    pod = one(docs, "Pod")
    service = one(docs, "Service")
    (container,) = pod["spec"]["containers"]
    assert container["command"] == ["sh", "-c"]
    (script,) = container["args"]
    in_cluster = (f"http://{service['metadata']['name']}.{NAMESPACE}.svc:"
                  f"{service['spec']['ports'][0]['port']}/metrics")
    assert in_cluster in script
    # Fewer retries here: a wrong endpoint should fail fast.
    return str(script.replace(in_cluster, url).replace("--retry 10", "--retry 1")
               .replace("--retry-delay 3", "--retry-delay 1"))


@pytest.fixture(scope="module")
def fresh_operator_metrics() -> Iterator[str]:
    """The operator's metrics endpoint as right after install: no QueueWorker yet."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", (
        "import time\n"
        "from queueworker.operator import metrics\n"
        f"metrics.serve({port}, addr='127.0.0.1')\n"
        "time.sleep(120)\n")])
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                urllib.request.urlopen(url, timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "no endpoint"
                assert proc.poll() is None, "no endpoint: the process exited"
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def test_passes_against_a_fresh_operator(fresh_operator_metrics: str) -> None:
    result = subprocess.run([tool("sh"), "-c", _script(fresh_operator_metrics)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_fails_against_another_exporter() -> None:
    # Prometheus' own /metrics answers, but it is not the queueworker operator.
    with Prometheus() as prom:
        result = subprocess.run([tool("sh"), "-c", _script(f"{prom.url}/metrics")],
                                capture_output=True, text=True, timeout=60)
    assert result.returncode != 0


def test_fails_when_nothing_answers() -> None:
    url = f"http://127.0.0.1:{free_port()}/metrics"
    result = subprocess.run([tool("sh"), "-c", _script(url)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert tool("curl")  # the image runs curl; so does this test
