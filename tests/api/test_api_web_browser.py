"""The web view in a real browser: Debian's chromium driven by playwright (PyPI), against a
real uvicorn server and a real redis-server. A failed job (failed by a real worker) is
retried with a click and is back in its waiting list; a read-only token sees no buttons."""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import redis
from playwright.sync_api import Browser, Page, expect, sync_playwright

from queueworker.worker import keys
from queueworker.worker.control import Fail
from queueworker.worker.failed import FailedStore
from queueworker.worker.flows import Flows, step
from queueworker.worker.producer import Producer
from queueworker.worker.runtime import Worker
from queueworker.worker.schedule_store import ScheduleStore
from queueworker.worker.schedules import Schedule

from support.api_client import make_token
from support.api_thread import serving, web_app
from support.worker_inproc import fast_settings, run_until, table

pytestmark = pytest.mark.slow
TIMEOUT_MS = 15_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium is missing: run bash scripts/ensure-tools.sh"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, headless=True,
                              args=["--no-sandbox", "--disable-dev-shm-usage"])
        yield b
        b.close()


def failed_job(redis_url: str) -> str:
    """A job a real (in-process) worker ran and failed for good."""
    producer = Producer(redis.Redis.from_url(redis_url, decode_responses=True), keyring=None)

    def separate(payload: Any) -> None:
        raise Fail("not an audio file")

    job_id = producer.enqueue("audio", {"file": "notes.txt"}, max_tries=1)

    async def failed() -> bool:
        return FailedStore(producer.redis).ids() == [job_id]

    worker = Worker(fast_settings(redis_url, queues=["audio"]), table(separate))
    # On a thread: sync playwright keeps an event loop of its own on this one.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, run_until(worker, failed)).result(60)
    return job_id


def live_worker(redis_url: str) -> None:
    """A worker's heartbeat with a running job, as the runtime writes it (keys.py)."""
    r = redis.Redis.from_url(redis_url)
    now = time.time()
    beat = {"id": "gpu-0-1234", "pod": "separator-0", "host": "h", "pid": 1234,
            "queues": ["audio"], "state": "busy",
            "in_flight": [{"id": "1700000000000-run", "queue": "audio", "started_at": now - 3}],
            "processed": 7, "failed": 1, "started_at": now - 60, "beat_at": now}
    r.zadd(keys.workers("qw"), {"gpu-0-1234": now})
    r.set(keys.worker("gpu-0-1234", "qw"), json.dumps(beat), ex=60)


def open_with(page: Page, base: str, token: str) -> None:
    page.goto(f"{base}/ui/")
    page.fill("#token", token)
    page.click("#login button[type=submit]")


def test_admin_retries_a_failed_job_with_a_click(browser: Browser, redis_url: str) -> None:
    job_id = failed_job(redis_url)
    live_worker(redis_url)
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    with serving(web_app(redis_url)) as base:
        page = browser.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        open_with(page, base, make_token(sub="ops", scope="admin"))
        expect(page.locator("#who")).to_have_text("ops (admin)")
        expect(page.locator("#login")).to_be_hidden()
        row = page.locator(f'tr[data-failed="{job_id}"]')
        expect(row).to_contain_text("Fail: not an audio file")
        expect(page.locator('tr[data-worker="gpu-0-1234"]')).to_contain_text("1700000000000-run")
        expect(page.locator('tr[data-queue="audio"] td.waiting')).to_have_text("0")

        row.locator("a[data-show]").click()  # its error and traceback (admin)
        expect(page.locator("#job-detail")).to_contain_text('"error": "Fail: not an audio file"')

        row.locator('button[data-action="retry"]').click()
        expect(page.locator("#flash")).to_have_text(f"retry {job_id}: done")
        # Really back: out of the failed store, in the audio queue's waiting list.
        assert r.zscore(keys.failed("audio", "qw"), job_id) is None
        assert job_id in r.lrange(keys.waiting("audio", "qw"), 0, -1)
        # ...and the live view follows (the next snapshot).
        expect(row).to_have_count(0)
        expect(page.locator('tr[data-queue="audio"] td.waiting')).to_have_text("1")
        page.fill("#job-id", job_id)
        page.click("#lookup button")
        expect(page.locator("#job-detail")).to_contain_text('"state": "waiting"')
        # The token stays in this tab: a reload needs no paste.
        page.reload()
        expect(page.locator("#who")).to_have_text("ops (admin)")
        assert errors == []
        page.close()


def test_batches_and_schedules_with_their_buttons(browser: Browser, redis_url: str) -> None:
    r = redis.Redis.from_url(redis_url, decode_responses=True)
    bid = Flows(r).batch([step("render", {"frame": i}) for i in range(4)], name="frames")
    ScheduleStore(r).register([Schedule("nightly", queue="reports", cron="0 3 * * *",
                                        tz="Europe/Berlin", payload={"k": 1})])
    with serving(web_app(redis_url)) as base:
        page = browser.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        open_with(page, base, make_token(sub="ops", scope="admin"))
        batch = page.locator(f'tr[data-batch="{bid}"]')
        expect(batch).to_contain_text("frames")
        expect(batch.locator("td").nth(3)).to_have_text("4")  # total
        expect(batch.locator("progress")).to_have_attribute("value", "0")
        nightly = page.locator('tr[data-schedule="nightly"]')
        expect(nightly).to_contain_text("cron '0 3 * * *' Europe/Berlin")

        nightly.locator('button[data-action="trigger"]').click()
        expect(page.locator("#flash")).to_have_text("trigger nightly: done")
        assert r.llen(keys.waiting("reports", "qw")) == 1
        nightly.locator('button[data-action="pause"]').click()
        expect(nightly).to_contain_text("paused")  # the next snapshot shows it
        assert ScheduleStore(r).show("nightly")["paused"] is True  # type: ignore[index]

        batch.locator('button[data-action="cancel"]').click()
        expect(batch).to_contain_text("cancelled")
        page.close()


def test_a_read_only_token_sees_no_admin_buttons(browser: Browser, redis_url: str) -> None:
    failed_job(redis_url)
    with serving(web_app(redis_url)) as base:
        page = browser.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(f"{base}/ui/")
        expect(page.locator("#login")).to_be_visible()  # no token yet: asked for one
        open_with(page, base, "not-a-jwt")
        expect(page.locator("#login-error")).to_contain_text("not a JWT")
        page.fill("#token", make_token(sub="viewer", scope="jobs:read"))
        page.click("#login button[type=submit]")
        expect(page.locator("#who")).to_have_text("viewer (read-only)")
        expect(page.locator('tr[data-queue="audio"]')).to_be_visible()
        expect(page.locator("#failed-note")).to_have_text("Failed jobs need an admin token.")
        assert page.locator("button[data-action]").count() == 0
        page.close()
