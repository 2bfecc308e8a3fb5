"""FETCH: the take of a batch, as one Lua script (the hot path; see scripts.py for the
diagram of a job's moves and PRELUDE's helpers: ``wkey``, ``jget``, ``junk``, ``promote_due``).
"""

from __future__ import annotations

from queueworker.worker.scripts import PRELUDE

# ARGV: prefix, want, lease, worker, park_delay, then per queue (in the worker's
# order): queue, rate_n (0: none), rate_period.
# Queues are taken in the order given; within a queue, its priority levels 10..1
# (keys.waiting), FIFO within a level: up to `want` jobs in all.
# -> flat triples: {id, deliveries, {queue, payload, tries, max_tries, backoff, timeout,
#    retry_until, enqueued_at, handler, concurrency_key, concurrency_limit, priority}}
#    per job taken, and {failed store id, -1, {queue, reason, error}} per entry that
#    could not run and went to the failed store (see `junk` in PRELUDE).
FETCH = PRELUDE + """
local now = now_s()
local want, lease, worker, park = tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4], tonumber(ARGV[5])
local out = {}
local nows, until_ = tostring(now), now + lease
local inflight = {}  -- score, id pairs for the in-flight ZSET of the queue being taken
local function flush(q)
  if #inflight > 0 then
    redis.call('ZADD', qkey(q, 'inflight'), unpack(inflight))
    inflight = {}
  end
end
local function filed(q, entry, reason, why)
  out[#out + 1] = junk(q, entry, now, reason, why)
  out[#out + 1] = -1
  out[#out + 1] = {q, reason, why}
end
-- One popped entry: run it (-> out), park it (concurrency key full) or file it as junk.
-- -> 1 when it was taken to run.
local function take_one(q, wk, lvl, id)
  if not usable_id(id, q) then
    filed(q, id, 'bad_entry', 'BadEntry: an entry of ' .. wk .. ' is not a job id (empty, ' ..
      'over 200 bytes, bytes outside printable ASCII, or on a Redis Cluster not an id of ' ..
      'this queue); the entry is kept as the payload')
    return 0
  end
  local jk = jkey(id)
  local h = jgetk(jk, 'queue', 'payload', 'tries', 'max_tries', 'backoff', 'timeout',
    'retry_until', 'enqueued_at', 'handler', 'concurrency_key', 'concurrency_limit',
    'deliveries')
  if not h then
    filed(q, id, 'bad_entry', 'BadEntry: the job key of ' .. id .. ' in ' .. wk ..
      ' is not a hash (type ' .. redis.call('TYPE', jk).ok .. '); the id is kept as the payload')
    return 0
  end
  if not h[1] and redis.call('EXISTS', jk) == 0 then
    filed(q, id, 'no_job_hash', 'NoJobHash: ' .. id .. ' was in ' .. wk .. ' without a job ' ..
      'hash (pushed by hand, or its hash expired or was deleted); the id is kept as the payload')
    return 0
  end
  -- It is a job of the queue it waited in (its in-flight entry is there, whatever a
  -- hand-written hash says or lacks): the worker settles it there.
  h[1] = q
  local ck, cl = h[10] or '', tonumber(h[11]) or 1
  if ck ~= '' then
    local ckey = qkey(q, 'conc:' .. ck)
    redis.call('ZREMRANGEBYSCORE', ckey, '-inf', now)
    if redis.call('ZCARD', ckey) >= cl then
      redis.call('ZADD', qkey(q, 'delayed'), now + park, id)
      redis.call('HSET', jk, 'state', 'delayed')
      return 0
    end
    redis.call('ZADD', ckey, now + lease, id)
  end
  -- One HSET for the delivery count and the state (not HINCRBY + HSET: a command less
  -- per job, and a hand-written count that is no number restarts at 1 instead of
  -- aborting the script after its RPOP); the in-flight ZADD is one per queue (flush).
  local d = math.floor(tonumber(h[12]) or 0) + 1
  redis.call('HSET', jk, 'deliveries', d, 'state', 'running', 'worker', worker,
    'started_at', nows)
  inflight[#inflight + 1] = until_
  inflight[#inflight + 1] = id
  if #inflight >= 1000 then flush(q) end
  h[12] = lvl
  out[#out + 1] = id
  out[#out + 1] = d
  out[#out + 1] = h
  return 1
end
-- Levels other than the default (5) are looked at only when one EXISTS says a list of
-- them is there: a queue that uses no priorities costs one RPOP, not ten.
local function levels_used(q, from, to)
  local names = {}
  for lvl = from, to, -1 do names[#names + 1] = wkey(q, lvl) end
  return redis.call('EXISTS', unpack(names)) > 0
end
for i = 6, #ARGV, 3 do
  if want <= 0 then break end
  local q, rn, rp = ARGV[i], tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])
  -- (paused queues are not in ARGV: the worker leaves them out, runtime Worker.paused)
  promote_due(q, now, 1000)
  local take, rkey = want, nil
  if rn > 0 then
    rkey = qkey(q, 'rate:' .. math.floor(now / rp))
    local left = rn - tonumber(redis.call('GET', rkey) or '0')
    if left < take then take = left end
  end
  local popped = 0
  local high, low = nil, nil
  for lvl = 10, 1, -1 do
    if take <= 0 or want <= 0 then break end
    local look = true
    if lvl == 10 then high = levels_used(q, 10, 6); look = high
    elseif lvl > 5 then look = high
    elseif lvl == 4 then low = levels_used(q, 4, 1); look = low
    elseif lvl < 4 then look = low end
    if look then
      local wk = wkey(q, lvl)
      local ids = redis.call('RPOP', wk, take)
      if ids then
        popped = popped + #ids
        take = take - #ids
        for _, id in ipairs(ids) do want = want - take_one(q, wk, lvl, id) end
      end
    end
  end
  flush(q)
  if rkey and popped > 0 then
    redis.call('INCRBY', rkey, popped)
    redis.call('PEXPIRE', rkey, math.ceil(rp * 1000) + 1000)
  end
end
return out
"""
