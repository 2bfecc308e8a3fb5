"""queueworker.worker: the Python worker runtime (jobs, broker, consumer, drain).

Enqueue from any Python program (``producer.Producer``; ``AsyncProducer`` for
asyncio), or ``queueworker enqueue QUEUE JSON``::

    Producer(redis.Redis.from_url(url)).enqueue(
        "emails", {"to": "a@example.com"}, delay=10, max_tries=5, backoff=[10, 30, 60],
        timeout=30, unique_key="welcome:42", priority=8)  # -> job id

Run a worker (``queueworker worker --help``)::

    queueworker worker --queue high,default,low --handler app.jobs:send --concurrency 16

A handler gets the JSON-decoded payload (and the ``Job`` as ``job=`` if it has a
parameter of that name); returning means done (the return value is the job's
result: ``Producer.wait``/``result``, results.py), raising means a failed attempt
(``Fail``, ``Release``, ``@handler`` hooks: control.py); ``job.progress(f)``
reports progress (progress.py). Encryption at rest: crypto.py.

Guarantees (see ``broker`` for the moves and ``runtime`` for the loop):

- At least once. A taken job sits in the queue's in-flight ZSET with a lease
  (default 30 s) that the worker renews every lease/3 while the job runs. If
  the worker is SIGKILLed or loses Redis, the lease runs out and the reaper
  (run by some worker every 2 s, one at a time) puts the job back at the head
  of its queue; it runs again with ``deliveries`` + 1. A job whose lease runs
  out ``max_lost`` (5) times fails as a poison pill.
- Failed attempts (an exception, or the job's ``timeout``) are retried after
  ``backoff`` until ``max_tries`` or ``retry_until``; then the job goes to the
  failed store with its error and traceback (``queueworker failed list | show
  | retry | forget | flush``). A payload that is not JSON or a handler name
  the worker does not know fails at once, and so does anything in a queue that
  is no runnable job (an id without a job hash, an entry that is not an id,
  fields that are not UTF-8): nothing is skipped. Finished job hashes expire after
  ``result_ttl`` (1 h); the failed store is trimmed by age (7 d) and count.
- Drain: SIGTERM stops fetching at once, finishes and acks running jobs and
  exits 0; at the drain deadline (QUEUEWORKER_DRAIN_DEADLINE, default 30 s)
  or on a second signal it hands running jobs back to the head of their queue
  (``tries`` unchanged) and exits 0.
- Priorities inside a queue: ``priority`` 1..10 (10 first, default 5, FIFO
  within a level), after the order of ``--queue``. Prefetch adapts: a worker
  takes jobs beyond its free slots only while jobs last a few ms (fetcher.py).
- Delayed jobs, unique jobs (``unique_key``/``unique_for``), a rate limit per
  queue (``--rate-limit Q=N/SECONDS``) and a concurrency limit per key shared
  by all workers (``concurrency_key``/``concurrency_limit`` at enqueue).

Observability: heartbeats (``heartbeat.read_heartbeats``), Prometheus metrics
and ``/healthz`` on ``--metrics-port`` (``metrics``), NVML GPU gauges when a GPU
is visible (``gpu``), logfmt log lines on stderr with Redis passwords redacted.
Key layout: ``keys``. Throughput: benchmarks/throughput/RESULTS.md.
"""
