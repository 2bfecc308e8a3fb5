"""One pipeline per Redis per poll tick: the reads of every QueueWorker on a Redis, coalesced.

Each QueueWorker's loop reads its queues in one pipelined round trip
(observe/reading.py). With thousands of QueueWorkers on one Redis that is
still one round trip per QueueWorker per poll. A ``Batcher`` (one per Redis
client, ``controller/context.Shared.batcher``) gathers the command lists that
loops hand it and sends them as one pipeline once none has come for ``window``
seconds (or ``max_wait`` after the first: a busy process still sends); each
caller gets back exactly its own replies. A quiet gap, not a fixed window,
because a loaded process takes a while to run a tick's worth of loops up to
their reads (benchmarks/operator_scale/RESULTS.md).

What stays each caller's own:
- a command's error (a wrong key type, an unknown command) is an exception
  object in that caller's replies only, as with ``raise_on_error=False``: one
  bad key never spoils another QueueWorker's reading;
- a caller that stops waiting (its ``asyncio.wait_for`` limit, a cancelled
  loop) drops out: its commands are not sent if the pipeline has not left yet,
  and its replies are dropped if it has;
- a connection error is raised to every caller of that pipeline: none of
  them could have read anything (the same as one pipeline each).

Loops meet in a window only if they poll at the same moments: ``slot`` gives
the next poll time on a grid of the poll interval, offset by a phase taken
from the Redis's address (``phase_of``), so every QueueWorker on one Redis
polls together while different Redis servers are spread over the interval.
"""

from __future__ import annotations

import asyncio
import inspect
import math
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import redis.asyncio

from queueworker.observe import pipeline

Args = Sequence[Any]  # one command: name and arguments, as execute_command takes them

# Commands in one pipeline at most: a larger batch leaves at once, so a reply
# buffer stays bounded (about 250 QueueWorkers of 7 layouts, see RESULTS.md).
MAX_COMMANDS = 20_000


@dataclass
class _Request:
    commands: Sequence[Args]
    future: asyncio.Future[list[Any]]


@dataclass
class BatchStats:
    """What a batcher has sent (tests, the benchmark)."""

    pipelines: int = 0
    requests: int = 0
    commands: int = 0


class Batcher:
    """Coalesces the command lists handed to ``execute`` into one pipeline per window."""

    def __init__(self, client: redis.asyncio.Redis, window: float, max_wait: float = 0.25,
                 max_commands: int = MAX_COMMANDS,
                 on_send: Callable[[int, int], None] | None = None,
                 timeout: float = 3.0) -> None:
        """``on_send(requests, commands)`` is told of each pipeline as it leaves (metrics);
        ``timeout``: seconds one pipeline may take to be sent and answered (then
        every caller of it gets ``TimeoutError``)."""
        if window < 0 or max_wait < window:
            raise ValueError(f"batch window must be >= 0 and <= max_wait seconds, got "
                             f"window {window}, max_wait {max_wait}")
        self.client = client
        self.window = window
        self.max_wait = max_wait
        self.max_commands = max_commands
        self.on_send = on_send
        self.timeout = timeout
        self.stats = BatchStats()
        self._pending: list[_Request] = []
        self._size = 0
        self._timer: asyncio.TimerHandle | None = None
        self._first = self._last = 0.0  # loop.time() of the batch's first and last request
        self._sending: set[asyncio.Task[None]] = set()  # strong references until done

    async def execute(self, commands: Sequence[Args]) -> list[Any]:
        """The replies to ``commands``, in order; a failed command is its exception object.

        Connection and timeout errors of the shared pipeline raise here."""
        if not commands:
            return []
        loop = asyncio.get_running_loop()
        request = _Request(commands, loop.create_future())
        self._pending.append(request)
        self._size += len(commands)
        self._last = loop.time()
        if self._size >= self.max_commands:
            self._flush()
        elif self._timer is None:
            self._first = self._last
            self._timer = loop.call_later(self.window, self._due)
        return await request.future

    def _due(self) -> None:
        """Send, unless a request came within the quiet gap and ``max_wait`` is not up."""
        loop = asyncio.get_running_loop()
        until = min(self._last + self.window, self._first + self.max_wait)
        if loop.time() >= until:
            self._flush()
        else:
            self._timer = loop.call_at(until, self._due)

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch, self._pending, self._size = self._pending, [], 0
        task = asyncio.get_running_loop().create_task(self._send(batch), name="redis-batch")
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send(self, batch: list[_Request]) -> None:
        live = [r for r in batch if not r.future.done()]  # callers that gave up: not sent
        if not live:
            return
        commands = [args for r in live for args in r.commands]
        self.stats.pipelines += 1
        self.stats.requests += len(live)
        self.stats.commands += len(commands)
        if self.on_send is not None:
            self.on_send(len(live), len(commands))
        try:
            replies = await self._execute(commands)
        except Exception as exc:  # the connection: nobody's commands were answered
            for r in live:
                if not r.future.done():
                    r.future.set_exception(exc)
            return
        i = 0
        for r in live:
            n = len(r.commands)
            if not r.future.done():
                r.future.set_result(replies[i:i + n])
            i += n

    async def _execute(self, commands: list[Args]) -> list[Any]:
        """One pipeline's replies, a failed command's as its exception object.

        redis-py's pipeline reads each reply under its own socket timeout: a
        timer armed and cancelled per command, most of a poll's CPU with a
        native queue's 26 commands (benchmarks/operator_scale/RESULTS.md). Here
        the pipeline is sent and read on one pooled connection under one
        deadline for all of it; the replies go through the client's own
        response callbacks, as its pipeline's do. A client whose pool hands out
        no plain connection (a RedisCluster has none) keeps redis-py's pipeline: one
        per node (observe/pipeline.py)."""
        pool = getattr(self.client, "connection_pool", None)
        if not isinstance(pool, redis.asyncio.ConnectionPool):  # CLIENT LIST per primary
            return await pipeline.aexecute(self.client, commands)
        conn = await _connection(pool)
        try:
            async with asyncio.timeout(self.timeout):
                await conn.send_packed_command(_pack(commands, conn.encoder))
                return await _replies(conn, commands, self.client.response_callbacks)
        except BaseException:
            # Replies may be left unread on it: never hand it out again as it is.
            await conn.disconnect(nowait=True)
            raise
        finally:
            await pool.release(conn)

    async def close(self) -> None:
        """Wait for pipelines in flight (their callers get their replies) and stop."""
        if self._pending:
            self._flush()
        if self._sending:
            await asyncio.gather(*self._sending, return_exceptions=True)


async def _connection(pool: redis.asyncio.ConnectionPool) -> Any:
    # redis-py 5.3 deprecates the command name it once required (5.2).
    if _GET_CONNECTION_TAKES_NAME:
        return await pool.get_connection("PIPELINE")
    return await pool.get_connection()


_GET_CONNECTION_TAKES_NAME = inspect.signature(
    redis.asyncio.ConnectionPool.get_connection).parameters["command_name"].default is (
    inspect.Parameter.empty)


def _pack(commands: list[Args], encoder: Any) -> bytes:
    """The RESP of ``commands``, as redis-py packs them (a command name with a space is
    two words; numbers by ``repr``) in one pass: its packer costs more than the
    reads it batches, one encoder call per argument."""
    encoding, errors = encoder.encoding, encoder.encoding_errors
    out: list[bytes] = []
    for args in commands:
        head = args[0]
        words: Sequence[Any] = (*head.split(), *args[1:]) if (
            isinstance(head, str) and " " in head) else args
        out.append(b"*%d\r\n" % len(words))
        for arg in words:
            if isinstance(arg, str):
                b = arg.encode(encoding, errors)
            elif isinstance(arg, bytes | memoryview):
                b = bytes(arg)
            elif isinstance(arg, int | float) and not isinstance(arg, bool):
                b = repr(arg).encode()
            else:  # what redis-py refuses too (None, bool, ...): its own clear error
                b = encoder.encode(arg)
            out.append(b"$%d\r\n%b\r\n" % (len(b), b))
    return b"".join(out)


async def _replies(conn: Any, commands: list[Args], callbacks: Mapping[Any, Any]) -> list[Any]:
    """Read one reply per command with no timer of its own (``socket_timeout`` off for
    the reads: the caller's deadline covers them all)."""
    replies: list[Any] = []
    timeout, conn.socket_timeout = conn.socket_timeout, None
    try:
        for args in commands:
            try:
                reply = await conn.read_response()
            except redis.ResponseError as exc:
                replies.append(exc)
                continue
            callback = callbacks.get(args[0])
            if callback is not None:
                reply = callback(reply)
                if inspect.isawaitable(reply):
                    reply = await reply
            replies.append(reply)
    finally:
        conn.socket_timeout = timeout
    return replies


def phase_of(address: str) -> float:
    """A fraction of the poll interval in [0, 1), fixed for one Redis address.

    The same address gives the same phase in every operator process (CRC-32,
    not ``hash``), so shards polling one Redis poll it at the same moments."""
    return (zlib.crc32(address.encode()) % 10_000) / 10_000


def slot(now: float, interval: float, phase: float, *, min_gap: float = 0.5) -> float:
    """The next poll time (epoch seconds) on the grid ``k * interval + phase * interval``.

    At least ``min_gap`` of an interval after ``now``, so a loop that joins the
    grid never polls twice in quick succession; a loop already on the grid gets
    exactly ``now + interval``."""
    if interval <= 0:
        return now
    offset = phase * interval
    k = math.ceil((now + min_gap * interval - offset) / interval - 1e-9)
    return k * interval + offset
