"""GPU metrics through NVML, when there is one.

``GpuCollector.create(registry)`` imports ``pynvml`` (package nvidia-ml-py),
initialises NVML and registers a collector that reads every visible device on
each scrape: memory used and total (bytes) and utilisation (0..1). Without
the package, without a driver or without a device it returns None and nothing
else happens. A device that fails to answer on one scrape is skipped on that
scrape. Tests pass a stand-in object for the module (``nvml=``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from queueworker.worker.log import event


def _load_nvml() -> Any:
    try:
        import pynvml
    except ImportError:
        return None
    return pynvml


class GpuCollector(Collector):
    def __init__(self, nvml: Any, count: int) -> None:
        self.nvml = nvml
        self.count = count

    @classmethod
    def create(cls, registry: CollectorRegistry | None, nvml: Any = None) -> GpuCollector | None:
        nvml = nvml if nvml is not None else _load_nvml()
        if nvml is None:
            return None
        try:
            nvml.nvmlInit()
            count = int(nvml.nvmlDeviceGetCount())
        except Exception as exc:  # NVMLError_LibraryNotFound, DriverNotLoaded, ...
            event("gpu.nvml_unavailable", logging.DEBUG, error=str(exc))
            return None
        if count <= 0:
            return None
        collector = cls(nvml, count)
        if registry is not None:
            registry.register(collector)
        return collector

    def read(self) -> list[tuple[str, float, float, float]]:
        """(gpu index, memory used bytes, memory total bytes, utilisation 0..1) per device."""
        out = []
        for i in range(self.count):
            try:
                handle = self.nvml.nvmlDeviceGetHandleByIndex(i)
                mem = self.nvml.nvmlDeviceGetMemoryInfo(handle)
                util = self.nvml.nvmlDeviceGetUtilizationRates(handle)
                out.append((str(i), float(mem.used), float(mem.total), float(util.gpu) / 100.0))
            except Exception as exc:
                event("gpu.read_failed", logging.DEBUG, index=i, error=str(exc))
        return out

    def collect(self) -> Iterator[GaugeMetricFamily]:
        used = GaugeMetricFamily("queueworker_worker_gpu_memory_used_bytes",
                                 "GPU memory in use.", labels=["gpu"])
        total = GaugeMetricFamily("queueworker_worker_gpu_memory_total_bytes",
                                  "GPU memory in all.", labels=["gpu"])
        util = GaugeMetricFamily("queueworker_worker_gpu_utilization_ratio",
                                 "GPU busy time over the last sample period (0..1).",
                                 labels=["gpu"])
        for gpu, u, t, ratio in self.read():
            used.add_metric([gpu], u)
            total.add_metric([gpu], t)
            util.add_metric([gpu], ratio)
        yield used
        yield total
        yield util

    def close(self) -> None:
        try:
            self.nvml.nvmlShutdown()
        except Exception:
            pass
