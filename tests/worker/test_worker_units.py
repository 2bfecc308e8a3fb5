"""Pure parts of the worker runtime: ids, payloads, backoff, handlers, settings, logs, GPU."""

from __future__ import annotations

import random
import time
from types import SimpleNamespace
from typing import Any

import pytest
import redis
from prometheus_client import CollectorRegistry, generate_latest

from queueworker.common.redact import redact_url
from queueworker.worker import config, handlers, keys
from queueworker.worker.broker import RateLimit
from queueworker.worker.gpu import GpuCollector
from queueworker.worker.heartbeat import parse_heartbeats
from queueworker.worker.job import (
    Backoff,
    BadPayloadError,
    Job,
    JobOptions,
    PayloadError,
    encode_payload,
    new_id,
)
from queueworker.worker.metrics import GPU_METRIC_NAMES, METRIC_NAMES, WorkerMetrics
from queueworker.worker.producer import Producer


def test_job_id_starts_with_13_digit_enqueue_ms() -> None:
    job_id = new_id(1732400000.123)
    assert job_id.startswith("1732400000123-")
    assert keys.enqueued_at_from_id(job_id) == pytest.approx(1732400000.123)
    assert len({new_id() for _ in range(1000)}) == 1000


def test_binary_payload_is_refused_with_advice() -> None:
    with pytest.raises(PayloadError, match="base64"):
        encode_payload(b"\x00\x01")
    with pytest.raises(PayloadError, match="JSON"):
        encode_payload({"x": float("nan")})


def test_oversized_payload_is_refused() -> None:
    assert encode_payload("x" * 10, max_bytes=12) == '"xxxxxxxxxx"'
    with pytest.raises(PayloadError, match="over the limit of 12 bytes"):
        encode_payload("x" * 11, max_bytes=12)


def test_backoff_fixed_list_and_exponential_with_jitter() -> None:
    assert Backoff.parse(10).delay(1) == 10
    listed = Backoff.parse([10, 30, 60])
    assert [listed.delay(n) for n in (1, 2, 3, 4, 9)] == [10, 30, 60, 60, 60]
    assert Backoff.parse(listed.encode()) == listed
    exp = Backoff.parse("exp:2:100")
    rng = random.Random(1)
    for n, full in ((1, 2), (2, 4), (3, 8), (7, 100), (20, 100)):
        d = exp.delay(n, rng)
        assert full / 2 <= d <= full
    assert Backoff.parse(exp.encode()) == exp
    assert Backoff.parse(None).exponential
    with pytest.raises(ValueError, match="bad backoff 'soon'"):
        Backoff.parse("soon")
    with pytest.raises(ValueError, match="negative or NaN delay"):
        Backoff.parse(-1)


def test_retry_decision_respects_max_tries_and_retry_until() -> None:
    now = time.time()
    fields = {"queue": "q", "payload": "{}", "max_tries": "3", "backoff": "10"}
    job = Job.from_hash("1-a", fields)
    assert job.next_retry_delay(1, now) == 10
    assert job.next_retry_delay(2, now) == 10
    assert job.next_retry_delay(3, now) is None
    late = Job.from_hash("1-a", {**fields, "retry_until": str(now + 5)})
    assert late.next_retry_delay(1, now) is None


def test_bad_payload_is_its_own_error() -> None:
    with pytest.raises(BadPayloadError):
        Job.from_hash("1-a", {"payload": "{nope"}).payload()


def test_options_are_validated() -> None:
    with pytest.raises(ValueError, match="max_tries must be at least 1"):
        JobOptions(max_tries=0).fields()
    with pytest.raises(ValueError, match="timeout must be positive"):
        JobOptions(timeout=0).fields()
    assert JobOptions(timeout=1.5, concurrency_key="gpu", concurrency_limit=2).fields()[
        "concurrency_limit"] == "2"


def test_rate_limit_parse() -> None:
    assert RateLimit.parse("100/1") == RateLimit(100, 1.0)
    assert RateLimit.parse("5") == RateLimit(5, 1.0)
    with pytest.raises(ValueError, match="bad rate limit '0/1'"):
        RateLimit.parse("0/1")


def test_redact_url_never_shows_the_password() -> None:
    assert redact_url("redis://:s3cret@h:6379/0") == "redis://:***@h:6379/0"
    assert redact_url("rediss://u:s3cret@h/1") == "rediss://u:***@h/1"
    assert redact_url("redis://h:6379/0") == "redis://h:6379/0"


def test_settings_from_operator_env() -> None:
    s = config.from_env({"QUEUEWORKER_REDIS_URL": "redis://r:1/2", "QUEUEWORKER_QUEUES":
                         "high, default,low", "QUEUEWORKER_DRAIN_DEADLINE": "45",
                         "QUEUEWORKER_PREFIX": "app", "QUEUEWORKER_METRICS_PORT": "9100",
                         "POD_NAME": "emails-abc"})
    assert (s.redis_url, s.queues, s.drain_deadline, s.prefix, s.metrics_port, s.pod) == (
        "redis://r:1/2", ["high", "default", "low"], 45.0, "app", 9100, "emails-abc")


async def _async_handler(payload: Any, job: Job) -> None:
    pass


def _sync_handler(payload: Any) -> None:
    pass


def test_handler_table() -> None:
    t = handlers.HandlerTable.from_callables(_sync_handler, other=_async_handler)
    assert t.get("").fn is _sync_handler
    assert not t.get("").is_async
    assert t.get("other").is_async
    assert t.get("other").wants_job
    with pytest.raises(handlers.UnknownHandlerError, match="unknown handler 'nope'"):
        t.get("nope")


def test_handler_specs_load_or_explain() -> None:
    t = handlers.load(["support.worker_handlers:handlers"])
    assert set(t.handlers) == {"default", "record", "record_sync"}
    assert t.default is not None
    assert t.default.name == "default"
    with pytest.raises(handlers.HandlerError, match="cannot import"):
        handlers.load(["no_such_module_xyz:f"])
    with pytest.raises(handlers.HandlerError, match="has no"):
        handlers.load(["support.worker_handlers:missing"])
    with pytest.raises(handlers.HandlerError, match=r"package\.module:function"):
        handlers.load(["just_a_name"])


def test_metric_names_are_the_contract() -> None:
    m = WorkerMetrics()
    m.queue("default").completed.inc()
    m.queue("default").failed["timeout"].inc()
    text = m.render().decode()
    families = {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE")}
    assert {f for f in families if not f.endswith("_created")} == set(METRIC_NAMES)


class FakeNvml:
    """Stands in for pynvml: two devices, the second one broken."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def nvmlInit(self) -> None:
        self.calls.append("init")

    def nvmlShutdown(self) -> None:
        self.calls.append("shutdown")

    def nvmlDeviceGetCount(self) -> int:
        return 2

    def nvmlDeviceGetHandleByIndex(self, i: int) -> int:
        if i == 1:
            raise RuntimeError("GPU is lost")
        return i

    def nvmlDeviceGetMemoryInfo(self, h: int) -> Any:
        return SimpleNamespace(used=3 * 2**30, total=80 * 2**30, free=77 * 2**30)

    def nvmlDeviceGetUtilizationRates(self, h: int) -> Any:
        return SimpleNamespace(gpu=42, memory=10)


def test_gpu_metrics_with_a_stand_in_nvml() -> None:
    registry = CollectorRegistry()
    fake = FakeNvml()
    collector = GpuCollector.create(registry, fake)
    assert collector is not None
    text = generate_latest(registry).decode()
    assert 'queueworker_worker_gpu_memory_used_bytes{gpu="0"} 3.221225472e+09' in text
    assert 'queueworker_worker_gpu_memory_total_bytes{gpu="0"} 8.589934592e+10' in text
    assert 'queueworker_worker_gpu_utilization_ratio{gpu="0"} 0.42' in text
    assert 'gpu="1"' not in text  # a broken device is skipped, the scrape still works
    assert {n for n in GPU_METRIC_NAMES} <= {
        line.split()[2] for line in text.splitlines() if line.startswith("# TYPE")}
    collector.close()
    assert fake.calls == ["init", "shutdown"]


def test_no_gpu_means_no_collector() -> None:
    class NoDriver(FakeNvml):
        def nvmlInit(self) -> None:
            raise OSError("NVML Shared Library Not Found")

    class NoDevice(FakeNvml):
        def nvmlDeviceGetCount(self) -> int:
            return 0

    assert GpuCollector.create(CollectorRegistry(), NoDriver()) is None
    assert GpuCollector.create(CollectorRegistry(), NoDevice()) is None
    # The real module: importable here, but there is no driver on this machine.
    GpuCollector.create(CollectorRegistry())


def test_heartbeat_parsing_skips_expired_and_malformed() -> None:
    beat = ('{"id": "w1", "pod": "p", "host": "h", "pid": 1, "queues": ["q"], "state": "busy",'
            '"in_flight": [{"id": "j", "queue": "q", "started_at": 1.5}], "processed": 3,'
            '"failed": 1, "started_at": 1, "beat_at": 2, "concurrency": 4}')
    beats = parse_heartbeats([beat, None, "{not json"])
    assert len(beats) == 1
    assert beats[0].busy
    assert beats[0].in_flight[0].id == "j"
    assert beats[0].extra == {
        "concurrency": 4}


def test_command_line_wins_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from queueworker.worker.cli import parser, settings_from

    monkeypatch.setenv("QUEUEWORKER_QUEUES", "from-env")
    monkeypatch.setenv("QUEUEWORKER_DRAIN_DEADLINE", "45")
    s = settings_from(parser().parse_args([
        "--queue", "high,low", "--handler", "a:b,c:d", "--concurrency", "3", "--max-jobs", "9",
        "--failed-max-age", "60", "--failed-max-count", "10", "--rate-limit", "high=5/2",
        "--stop-when-empty"]))
    assert (s.queues, s.handlers, s.concurrency, s.max_jobs, s.drain_deadline) == (
        ["high", "low"], ["a:b", "c:d"], 3, 9, 45.0)
    assert (s.failed_max_age, s.failed_max_count, s.stop_when_empty) == (60.0, 10, True)
    assert s.rate_limits == {"high": RateLimit(5, 2.0)}
    with pytest.raises(ValueError, match="QUEUE=N/SECONDS"):
        settings_from(parser().parse_args(["--rate-limit", "5/2"]))


def test_unique_for_under_a_millisecond_is_a_clear_error(redis_url: str) -> None:
    # PX 0 would be a Redis error from inside the enqueue script.
    producer = Producer(redis.Redis.from_url(redis_url))
    with pytest.raises(ValueError, match=r"unique_for must be at least 0\.001 s"):
        producer.enqueue("q", {}, unique_key="k", unique_for=0.0004)
