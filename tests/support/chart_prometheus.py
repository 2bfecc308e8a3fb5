"""A real Prometheus server (Debian's `prometheus`) on a free loopback port.

Used to check that every dashboard and alert expression parses (the HTTP query
API answers `status: success`), and, with scrape targets, that they return data.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from support.redis_server import free_port


class Prometheus:
    """`targets` maps a scrape job name to loopback `host:port` addresses."""

    def __init__(self, targets: dict[str, Sequence[str]] | None = None, *,
                 rule_files: Sequence[Path] = (), scrape_interval: str = "1s",
                 job_options: dict[str, dict[str, Any]] | None = None) -> None:
        """`job_options`: per job, `labels` (target labels, as service discovery
        would add) and `honor_labels`."""
        job_options = job_options or {}
        binary = shutil.which("prometheus")
        if binary is None:
            raise RuntimeError("prometheus not found: run `make setup` (scripts/ensure-tools.sh)")
        self.binary = binary
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="qw-prometheus-"))
        config: dict[str, Any] = {
            "global": {"scrape_interval": scrape_interval, "evaluation_interval": scrape_interval},
            "scrape_configs": [
                {"job_name": job,
                 "honor_labels": bool(job_options.get(job, {}).get("honor_labels", False)),
                 "static_configs": [{"targets": list(addrs),
                                     "labels": job_options.get(job, {}).get("labels", {})}]}
                for job, addrs in (targets or {}).items()
            ],
        }
        if rule_files:
            config["rule_files"] = [str(p) for p in rule_files]
        self.config = self.dir / "prometheus.yml"
        self.config.write_text(yaml.safe_dump(config), encoding="utf-8")
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = self.dir / "prometheus.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Prometheus:
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [self.binary, f"--config.file={self.config}",
                 f"--storage.tsdb.path={self.dir / 'data'}",
                 f"--web.listen-address=127.0.0.1:{self.port}",
                 # Debian's defaults point at /usr/share/prometheus; none are needed.
                 "--web.console.templates=", "--web.console.libraries="],
                stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"prometheus exited:\n{self.log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as resp:
                    if resp.status == 200:
                        return self
            except (urllib.error.URLError, ConnectionError):
                pass
            time.sleep(0.1)
        raise RuntimeError(f"prometheus not ready:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Prometheus:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.cleanup()

    def api(self, path: str, **params: str) -> dict[str, Any]:
        """GET an API path; the decoded answer, errors (HTTP 400/422) included."""
        url = f"{self.url}{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=10) as resp:
                body: dict[str, Any] = json.load(resp)
        except urllib.error.HTTPError as err:
            body = json.load(err)
        return body

    def query(self, expr: str) -> dict[str, Any]:
        return self.api("/api/v1/query", query=expr)

    def active_targets(self) -> list[dict[str, Any]]:
        targets: list[dict[str, Any]] = self.api("/api/v1/targets")["data"]["activeTargets"]
        return targets

    def wait_for_targets_up(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            targets = self.active_targets()
            if targets and all(t["health"] == "up" for t in targets):
                return
            time.sleep(0.2)
        raise AssertionError(f"targets not up: {self.active_targets()}")


def label_values(prom: Prometheus, selector: str, label: str) -> list[str]:
    """What Grafana's label_values(selector, label) lists, from the same API it uses."""
    answer = prom.api(f"/api/v1/label/{label}/values", **{"match[]": selector})
    assert answer["status"] == "success", answer
    values: list[str] = answer["data"]
    return values
