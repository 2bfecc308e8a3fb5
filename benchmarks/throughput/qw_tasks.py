"""The no-op job for the queueworker runtime (async and sync variants)."""

from typing import Any


async def noop(payload: Any) -> None:
    return None


def noop_sync(payload: Any) -> None:
    return None


async def echo(payload: Any) -> Any:
    """The no-op job of bench_wait.py: its result is its payload."""
    return payload


async def sleep(payload: Any) -> None:
    """A job that takes ``payload["s"]`` seconds (bench_prefetch.py)."""
    import asyncio
    await asyncio.sleep(float(payload["s"]))


async def started(payload: Any) -> float:
    """The job of bench_latency.py: its result is when it started (epoch seconds)."""
    import time
    return time.time()
