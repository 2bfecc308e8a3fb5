"""Every move of a job, as one Lua script each: atomic and one round trip.

The scripts are run by ``broker.Broker`` (fetch, settle, beat, reap; FETCH lives in
``fetch_lua.py``),
``producer.Producer`` (enqueue) and ``failed`` (the failed store).

    producer ──ENQUEUE──▶ waiting ◀──────────────── delayed (due: FETCH / REAP)
                             │ FETCH (batch)           ▲ SETTLE retry
                             ▼                         │
                          in flight (lease) ──SETTLE──▶ done (hash expires)
                             │   ▲ BEAT renews          └─▶ failed store
                             │   └ SETTLE back (drain: to the head of waiting)
                             └ REAP: lease ran out -> head of waiting, lost + 1

Why lists + Lua and not streams + XAUTOCLAIM. A stream consumer group gives a
pending-entries list with idle times, but (1) XAUTOCLAIM's idle time is reset
by XCLAIM, not by a cheap "I am still working" call, so a renewable lease
means an XCLAIM per running job per renewal; (2) delayed jobs, retries with
backoff, the failed store, unique and concurrency keys all live outside the
stream anyway, so every move would still need a script that touches the
stream, the PEL and the job's hash; (3) a job handed back on drain cannot be
put at the head of a stream; (4) queue depth for a stream is lag, not XLEN,
and the operator's reader is simpler with LLEN + ZCARD. With lists + Lua one
FETCH script moves up to K ids into the in-flight ZSET (score = lease expiry,
read by the reaper with one ZRANGEBYSCORE) and returns their hashes, and one
SETTLE script acks, retries or fails a batch: about 2/K round trips per job
plus one BEAT per interval. A stream worker needs XREADGROUP + HGETALL(s) +
XACK + XDEL per batch: no fewer round trips, and no lease.

Keys follow ``keys.py``. The scripts build the per-job and per-queue key names
from the prefix (they must match ``keys.py``; a test checks it). Every key a call
touches is of the queues it names, and on a Redis Cluster a call names the queues
of one hash slot (``broker.Broker``), with ``keys.script_keys`` as its KEYS
(tests/redis_topologies/test_topology_cluster_slots.py checks the slots).

Times in the in-flight and delayed ZSETs come from the Redis server's clock
(``TIME`` inside the scripts), so workers with skewed clocks agree on leases.
"""

from __future__ import annotations

from queueworker.worker.flows_lua import HOOKS
from queueworker.worker.prelude_lua import PRELUDE

# PRELUDE: the helpers every script starts with (prelude_lua.py).

# ARGV: prefix, queue, id, delay, unique_key, unique_for, field, value, ...
# -> {id, 1} (enqueued) or {existing id, 0} (a unique job with that key exists)
ENQUEUE = PRELUDE + """
local q, id, delay, uk = ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5]
if uk ~= '' then
  local k = qkey(q, 'unique:' .. uk)
  local existing = redis.call('GET', k)
  if existing then return {existing, 0} end
  redis.call('SET', k, id, 'PX', math.floor(tonumber(ARGV[6]) * 1000))
end
local jk = jkey(id)
redis.call('HSET', jk, unpack(ARGV, 7))
if delay > 0 then
  redis.call('ZADD', qkey(q, 'delayed'), now_s() + delay, id)
  redis.call('HSET', jk, 'state', 'delayed')
else
  redis.call('LPUSH', wkey_of(q, id), id)
  redis.call('HSET', jk, 'state', 'waiting')
  local nk = qkey(q, 'notify')
  redis.call('LPUSH', nk, '1')
  redis.call('LTRIM', nk, 0, 15)
end
redis.call('HINCRBY', qkey(q, 'stats'), 'enqueued', 1)
return {id, 1}
"""

# on_done / on_fail: called by SETTLE when a job is done (before its hash may be deleted;
# only for a job whose hash has a ``chain`` or ``batch`` field: a command less per plain
# job) or failed for good, and by REAP for a job failed by lost leases: chains and batches
# (flows_lua.py), inside the same atomic script.
ON_DONE = HOOKS

# ARGV: prefix, result_ttl, n_done, then n_done times 4 values (queue, id,
# delivery, result JSON or '') for jobs done, then per other job 7 values: op,
# queue, id, delivery, tries, a, b.  op: retry (a = delay, b = error) | fail
# (a = error, b = traceback) | back (a = '1': never started, undo the delivery
# count) | release (a = delay: back to the queue through delayed, tries
# unchanged). retryx / failx: the same, and the attempt ended in an exception
# (``exceptions`` + 1, for max_exceptions).
# A settlement applies only while the job is still in flight under this
# delivery (otherwise the lease ran out and the job is someone else's):
# -> {1|0, ...} in the order given.
# A job with ``waited`` in its hash (results.WAIT_CHECK) gets a token on
# keys.done(id) and a message on keys.progress_channel(id) when it finishes.
SETTLE = PRELUDE + ON_DONE + """
local now = now_s()
local nows = tostring(now)
local ttl = tonumber(ARGV[2])
local res, counts = {}, {}
local function count(q, name)
  local c = counts[q]
  if not c then c = {}; counts[q] = c end
  c[name] = (c[name] or 0) + 1
end
local function finished(id, state, keep)
  local dk = jkey(id) .. ':done'
  redis.call('LPUSH', dk, state)
  redis.call('EXPIRE', dk, keep)
  redis.call('PUBLISH', jkey(id) .. ':progress', '{"state":"' .. state .. '"}')
end
local ndone = tonumber(ARGV[3])
local rest = 4 + 4 * ndone
-- Which of the ids are in flight: one ZMSCORE per queue (chunks of 1000), not a ZSCORE
-- per job; the ones settled leave the ZSET in one ZREM per queue at the end.
local ids_of, live, settled = {}, {}, {}
do
  local i = 4
  while i <= #ARGV do
    local q, id
    if i < rest then q, id = ARGV[i], ARGV[i + 1]; i = i + 4
    else q, id = ARGV[i + 1], ARGV[i + 2]; i = i + 7 end
    local ids = ids_of[q]
    if not ids then ids = {}; ids_of[q] = ids; live[q] = {}; settled[q] = {} end
    ids[#ids + 1] = id
  end
end
local function chunks(ids, f)
  for s = 1, #ids, 1000 do f({unpack(ids, s, math.min(s + 999, #ids))}) end
end
for q, ids in pairs(ids_of) do
  local lq, inflight = live[q], qkey(q, 'inflight')
  chunks(ids, function(part)
    local scores = redis.call('ZMSCORE', inflight, unpack(part))
    for k = 1, #part do if scores[k] then lq[part[k]] = true end end
  end)
end
local i = 4
while i <= #ARGV do
  local op, q, id, dl, tries, a, b
  if i < rest then
    op, q, id, dl, a = 'done', ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
    i = i + 4
  else
    op, q, id, dl, tries, a, b = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3],
      ARGV[i + 4], ARGV[i + 5], ARGV[i + 6]
    i = i + 7
  end
  local jk = jkey(id)
  local ok = 0
  -- Still in flight under this delivery: in the ZSET and the count matches (an expired
  -- lease was reaped: not in flight; taken again: another count).
  local m = live[q][id] and jgetk(jk, 'deliveries', 'concurrency_key', 'unique_key',
                                 'result_ttl', 'waited', 'chain', 'batch')
  if m and m[1] == dl then
    live[q][id] = nil  -- the same job twice in one batch: the second finds it settled
    local done_q = settled[q]
    done_q[#done_q + 1] = id
    ok = 1
    if m[2] and m[2] ~= '' then redis.call('ZREM', qkey(q, 'conc:' .. m[2]), id) end
    if op == 'retryx' or op == 'failx' then
      redis.call('HINCRBY', jk, 'exceptions', 1)
      op = string.sub(op, 1, -2)
    end
    if op == 'done' then
      -- only jobs of a chain or batch (flows_lua) have anything to do there
      if (m[6] and m[6] ~= '') or (m[7] and m[7] ~= '') then on_done(q, id, jk, a, now) end
      local keep = tonumber(m[4]) or ttl
      if keep <= 0 and m[5] then keep = 60 end
      if keep > 0 then
        if a ~= '' then
          redis.call('HSET', jk, 'state', 'done', 'finished_at', nows, 'result', a)
        else
          redis.call('HSET', jk, 'state', 'done', 'finished_at', nows)
        end
        redis.call('EXPIRE', jk, keep)
      else
        redis.call('DEL', jk)
      end
      release_unique(q, m[3], id)
      count(q, 'completed')
      if m[5] then finished(id, 'done', keep) end
    elseif op == 'retry' then
      redis.call('HSET', jk, 'state', 'delayed', 'tries', tries, 'last_error', b)
      redis.call('ZADD', qkey(q, 'delayed'), now + tonumber(a), id)
      count(q, 'retried')
    elseif op == 'release' then
      redis.call('HSET', jk, 'state', 'delayed')
      redis.call('HINCRBY', jk, 'releases', 1)
      redis.call('ZADD', qkey(q, 'delayed'), now + tonumber(a), id)
      count(q, 'retried')
      count(q, 'released')
    elseif op == 'fail' then
      redis.call('HSET', jk, 'state', 'failed', 'tries', tries, 'error', a,
                 'traceback', b, 'failed_at', tostring(now))
      redis.call('ZADD', qkey(q, 'failed'), now, id)
      release_unique(q, m[3], id)
      count(q, 'failed')
      on_fail(q, id, jk, now)
      if m[5] then finished(id, 'failed', math.max(ttl, 3600)) end
    else
      redis.call('HSET', jk, 'state', 'waiting')
      if a == '1' then
        redis.call('HINCRBY', jk, 'deliveries', -1)
      else
        redis.call('HINCRBY', jk, 'handed_back', 1)
      end
      redis.call('RPUSH', wkey_of(q, id), id)
      redis.call('LPUSH', qkey(q, 'notify'), '1')  -- idle workers: take it now
      redis.call('LTRIM', qkey(q, 'notify'), 0, 15)
    end
  end
  res[#res + 1] = ok
end
for q, ids in pairs(settled) do
  local inflight = qkey(q, 'inflight')
  if #ids > 0 then chunks(ids, function(part) redis.call('ZREM', inflight, unpack(part)) end) end
end
for q, c in pairs(counts) do
  for name, n in pairs(c) do redis.call('HINCRBY', qkey(q, 'stats'), name, n) end
end
return res
"""

# ARGV: prefix, lease, n queues, the n queues, then per running job: queue, id,
# concurrency_key (all of one slot on a Redis Cluster: broker.Broker.beat_and_read).
# -> {{ids whose lease was gone}, {per queue, 10 LLENs: its waiting levels 10..1}}
# The worker's registry entry is written beside it by plain commands (REGISTER).
BEAT = PRELUDE + """
local now = now_s()
local lease, nq = tonumber(ARGV[2]), tonumber(ARGV[3])
local depths = {}
for i = 4, 3 + nq do
  for lvl = 10, 1, -1 do depths[#depths + 1] = redis.call('LLEN', wkey(ARGV[i], lvl)) end
end
local gone = {}
for i = 4 + nq, #ARGV, 3 do
  local q, id, ck = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local inflight = qkey(q, 'inflight')
  if redis.call('ZSCORE', inflight, id) then
    redis.call('ZADD', inflight, 'XX', now + lease, id)
    if ck ~= '' then redis.call('ZADD', qkey(q, 'conc:' .. ck), 'XX', now + lease, id) end
  else
    gone[#gone + 1] = id
  end
end
return {gone, depths}
"""

# REGISTER: the worker's score in keys.workers (the server's time, as the leases).
# KEYS: keys.workers; ARGV: worker id, stale_s (> 0: forget workers silent that long).
REGISTER = """#!lua
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
if ARGV[1] ~= '' then redis.call('ZADD', KEYS[1], now, ARGV[1]) end
local stale = tonumber(ARGV[2])
if stale > 0 then redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - stale) end
return 1
"""

# ARGV: prefix, holder, lock_ms, max_lost, batch, failed_max_age, failed_max_count,
# queue, ...  -> {recovered, promoted, failed, trimmed} or {-1} (another worker holds
# the reaper lock of every queue this interval). One lock per queue (keys.reaper_lock):
# workers serving different sets of queues agree on who reaps which queue.
# A failed store trimmed by age, then by count, at most `batch` ids a call (job hashes
# with them): REAP's per-queue stores and TRIM_LEGACY's old global one.
TRIM_FAILED = """
local function trim_failed(fk, now, max_age, max_count, batch)
  local old = {}
  if max_age > 0 then
    old = redis.call('ZRANGEBYSCORE', fk, '-inf', now - max_age, 'LIMIT', 0, batch)
  end
  if max_count > 0 and #old == 0 then
    local n = redis.call('ZCARD', fk)
    if n > max_count then old = redis.call('ZRANGE', fk, 0, math.min(n - max_count, batch) - 1) end
  end
  for _, id in ipairs(old) do
    redis.call('DEL', jkey(id))
    redis.call('ZREM', fk, id)
  end
  return #old
end
"""

REAP = PRELUDE + ON_DONE + TRIM_FAILED + """
local now = now_s()
local max_lost, batch = tonumber(ARGV[4]), tonumber(ARGV[5])
local max_age, max_count = tonumber(ARGV[6]), tonumber(ARGV[7])
local recovered, promoted, failed, trimmed, locked = 0, 0, 0, 0, 0
for i = 8, #ARGV do
  local q = ARGV[i]
  if redis.call('SET', qkey(q, 'reaper'), ARGV[2], 'NX', 'PX', ARGV[3]) then
  locked = locked + 1
  local inflight = qkey(q, 'inflight')
  local expired = redis.call('ZRANGEBYSCORE', inflight, '-inf', now, 'LIMIT', 0, batch)
  for _, id in ipairs(expired) do
    redis.call('ZREM', inflight, id)
    local jk = jkey(id)
    local kind = usable_id(id, q) and redis.call('TYPE', jk).ok or 'no id'
    if kind ~= 'hash' then  -- not a job of ours: filed, never dropped
      junk(q, id, now, kind == 'none' and 'no_job_hash' or 'bad_entry',
        'NoJobHash: an entry of ' .. inflight .. ' (in flight) has no job hash (its key: ' ..
        kind .. '); the entry is kept as the payload')
      failed = failed + 1
    else
      local lost = redis.call('HINCRBY', jk, 'lost', 1)
      local m = redis.call('HMGET', jk, 'concurrency_key', 'unique_key')
      if m[1] and m[1] ~= '' then redis.call('ZREM', qkey(q, 'conc:' .. m[1]), id) end
      if max_lost > 0 and lost >= max_lost then
        redis.call('HSET', jk, 'state', 'failed', 'failed_at', tostring(now), 'error',
          'LeaseExpired: the lease ran out ' .. lost .. ' times (worker killed or hung)',
          'traceback', '')
        redis.call('ZADD', qkey(q, 'failed'), now, id)
        redis.call('HINCRBY', qkey(q, 'stats'), 'failed', 1)
        release_unique(q, m[2], id)
        on_fail(q, id, jk, now)
        if redis.call('HEXISTS', jk, 'waited') == 1 then  -- wake its waiters (results.py)
          redis.call('LPUSH', jk .. ':done', 'failed')
          redis.call('EXPIRE', jk .. ':done', 3600)
          redis.call('PUBLISH', jk .. ':progress', '{"state":"failed"}')
        end
        failed = failed + 1
      else
        redis.call('HSET', jk, 'state', 'waiting')
        redis.call('RPUSH', wkey_of(q, id), id)
        recovered = recovered + 1
      end
    end
  end
  promoted = promoted + promote_due(q, now, batch)
  trimmed = trimmed + trim_failed(qkey(q, 'failed'), now, max_age, max_count, batch)
  end
end
if locked == 0 then return {-1} end
return {recovered, promoted, failed, trimmed}
"""

# The old layout's one failed store (keys.legacy_failed), trimmed as REAP trims a queue's,
# while it exists (one Redis only: Broker.reap). ARGV: prefix, max_age, max_count, batch.
TRIM_LEGACY = PRELUDE + TRIM_FAILED + """
return trim_failed(P .. ':failed', now_s(), tonumber(ARGV[2]), tonumber(ARGV[3]),
  tonumber(ARGV[4]))
"""
