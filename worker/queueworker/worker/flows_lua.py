"""Chains and batches in Lua: the hooks SETTLE and REAP call, and the scripts flows.py runs.

``HOOKS`` defines ``on_done(q, id, jk, result, now)`` and ``on_fail(q, id, jk,
now)``; scripts.py puts it after its PRELUDE (it uses ``qkey``, ``jkey``,
``wkey``, ``level``) in SETTLE (a job done or failed for good) and REAP (a
job failed by lost leases). So a job's ack and what it means for its chain or
batch happen in one script: a worker killed at any point leaves both or
neither, and every callback job is enqueued once (its id is fixed by the
chain's step or the batch, and never written twice).

Keys (a chain's or batch's id ends in ``@`` + the queue of its first step, as a job
id does, so its hash is in that queue's slot: ``{p}:{Q}:chain:{id}``; ids without it
keep ``{p}:chain:{id}``; on a Redis Cluster all its queues must share that slot,
flows.py checks it): ``{p}:chain:{id}`` HASH (``n``, ``pos``, ``state`` running | done |
failed, ``step:<i>`` and ``catch`` as prepared jobs (JSON: queue, fields),
``with_result``, ``current_job``, ``failed_job``); ``{p}:batch:{id}`` HASH
(``total``, ``pending``, ``processed``, ``failed``, ``cancelled``, ``state``
running | finished, ``allow_failures``, ``then`` / ``catch`` / ``finally``);
``{p}:batch:{id}:jobs`` SET of its jobs not settled yet, ``{p}:batch:{id}:failed``
SET of its failed jobs, ``{p}:batches`` ZSET id -> created at (written before the
batch, outside its script: it is in no queue's slot).
"""

from __future__ import annotations

# Uses PRELUDE's qkey, jkey, wkey, level, id_queue.
HOOKS = """
-- A chain's or batch's hash: in its queue's slot when its id names the queue (flows.py),
-- the old key otherwise (as jkey).
local function fkey(kind, fid)
  local q = id_queue(fid)
  if q then return P .. ':{' .. q .. '}:' .. kind .. ':' .. fid end
  return P .. ':' .. kind .. ':' .. fid
end
local function flow_push(s, id, now, extra, previous)
  local jk = jkey(id)
  if redis.call('EXISTS', jk) == 1 then return id end
  local args = {}
  for k, v in pairs(s.fields) do
    args[#args + 1] = k
    args[#args + 1] = v
  end
  for i = 1, #extra do args[#args + 1] = extra[i] end
  redis.call('HSET', jk, unpack(args))
  if previous then
    local p = s.fields.payload or 'null'
    if previous == '' then previous = 'null' end
    if string.sub(p, 1, 1) == '{' and string.match(p, '^{%s*}$') then
      p = '{"previous":' .. previous .. '}'
    elseif string.sub(p, 1, 1) == '{' then
      p = '{"previous":' .. previous .. ',' .. string.sub(p, 2)
    else
      p = '{"payload":' .. p .. ',"previous":' .. previous .. '}'
    end
    redis.call('HSET', jk, 'payload', p)
  end
  redis.call('HSET', jk, 'state', 'waiting', 'enqueued_at', tostring(now))
  redis.call('LPUSH', wkey(s.queue, level(s.fields.priority)), id)
  local nk = qkey(s.queue, 'notify')
  redis.call('LPUSH', nk, '1')
  redis.call('LTRIM', nk, 0, 15)
  redis.call('HINCRBY', qkey(s.queue, 'stats'), 'enqueued', 1)
  return id
end
local function flow_id(now, suffix, q)
  return string.format('%013d', math.floor(now * 1000)) .. '-' .. suffix .. id_suffix(q)
end
local function flow_callback(text, now, suffix, extra)
  if text and text ~= '' then
    local s = cjson.decode(text)
    return flow_push(s, flow_id(now, suffix, s.queue), now, extra, nil)
  end
  return nil
end
local function batch_finish(bid, bk, now)
  local b = redis.call('HMGET', bk, 'state', 'failed', 'cancelled', 'then', 'finally')
  if b[1] ~= 'running' then return end
  redis.call('HSET', bk, 'state', 'finished', 'finished_at', tostring(now))
  local extra = {'batch_callback', bid}
  if tonumber(b[2] or '0') == 0 and (b[3] or '') == '' then
    flow_callback(b[4], now, 'b-' .. bid .. '-then', extra)
  end
  flow_callback(b[5], now, 'b-' .. bid .. '-finally', extra)
end
-- Pending jobs of a cancelled batch leave their queues; running ones finish.
local function batch_drop_pending(bid, bk)
  local dropped = 0
  for _, id in ipairs(redis.call('SMEMBERS', bk .. ':jobs')) do
    local h = redis.call('HMGET', jkey(id), 'state', 'queue', 'priority')
    if h[1] == 'waiting' or h[1] == 'delayed' then
      redis.call('LREM', wkey(h[2], level(h[3])), 1, id)
      redis.call('ZREM', qkey(h[2], 'delayed'), id)
      redis.call('DEL', jkey(id))
      redis.call('SREM', bk .. ':jobs', id)
      dropped = dropped + 1
    end
  end
  if dropped > 0 then
    redis.call('HINCRBY', bk, 'pending', -dropped)
    redis.call('HINCRBY', bk, 'skipped', dropped)
  end
  return dropped
end
local function batch_cancel(bid, now)
  local bk = fkey('batch', bid)
  if redis.call('HGET', bk, 'state') ~= 'running' then return -1 end
  if (redis.call('HGET', bk, 'cancelled') or '') == '' then
    redis.call('HSET', bk, 'cancelled', tostring(now))
  end
  local dropped = batch_drop_pending(bid, bk)
  if tonumber(redis.call('HGET', bk, 'pending')) <= 0 then batch_finish(bid, bk, now) end
  return dropped
end
local function batch_settled(bid, id, ok, now)
  local bk = fkey('batch', bid)
  if redis.call('SREM', bk .. ':jobs', id) == 0 then return end  -- counted already
  redis.call('HINCRBY', bk, 'pending', -1)
  if ok then
    redis.call('HINCRBY', bk, 'processed', 1)
  else
    redis.call('SADD', bk .. ':failed', id)
    if redis.call('HINCRBY', bk, 'failed', 1) == 1 then
      flow_callback(redis.call('HGET', bk, 'catch'), now, 'b-' .. bid .. '-catch',
                    {'batch_callback', bid, 'failed_job', id})
      if redis.call('HGET', bk, 'allow_failures') ~= '1' then batch_cancel(bid, now) end
    end
  end
  if tonumber(redis.call('HGET', bk, 'pending')) <= 0 then batch_finish(bid, bk, now) end
end
local function chain_step(cid, pos, ok, id, result, now)
  local ck = fkey('chain', cid)
  local c = redis.call('HMGET', ck, 'pos', 'n', 'state', 'with_result', 'catch')
  if c[3] ~= 'running' or tonumber(c[1]) ~= pos then return end  -- applied already
  if not ok then
    redis.call('HSET', ck, 'state', 'failed', 'failed_job', id, 'finished_at', tostring(now))
    flow_callback(c[5], now, 'c-' .. cid .. '-catch', {'chain_callback', cid, 'failed_job', id})
    return
  end
  local nxt = pos + 1
  if nxt >= tonumber(c[2]) then
    redis.call('HSET', ck, 'state', 'done', 'pos', nxt, 'finished_at', tostring(now))
    return
  end
  local prev = nil
  if c[4] == '1' then prev = result or '' end
  local s = cjson.decode(redis.call('HGET', ck, 'step:' .. nxt))
  local nid = flow_push(s, flow_id(now, 'c-' .. cid .. '-' .. nxt, s.queue), now,
                        {'chain', cid, 'chain_pos', tostring(nxt)}, prev)
  redis.call('HSET', ck, 'pos', nxt, 'current_job', nid)
end
local function flow_settled(jk, id, ok, result, now)
  local f = redis.call('HMGET', jk, 'chain', 'chain_pos', 'batch')
  if f[1] and f[1] ~= '' then chain_step(f[1], tonumber(f[2]), ok, id, result, now) end
  if f[3] and f[3] ~= '' then batch_settled(f[3], id, ok, now) end
end
-- A job removed before it ran (queue clear): its batch counts it skipped, its chain stops.
local function flow_dropped(jk, id, now)
  local f = redis.call('HMGET', jk, 'chain', 'chain_pos', 'batch')
  if f[1] and f[1] ~= '' then
    local ck = fkey('chain', f[1])
    local c = redis.call('HMGET', ck, 'pos', 'state')
    if c[2] == 'running' and c[1] == f[2] then
      redis.call('HSET', ck, 'state', 'cancelled', 'finished_at', tostring(now))
    end
  end
  if f[3] and f[3] ~= '' then
    local bk = fkey('batch', f[3])
    if redis.call('SREM', bk .. ':jobs', id) == 1 then
      redis.call('HINCRBY', bk, 'skipped', 1)
      if redis.call('HINCRBY', bk, 'pending', -1) <= 0 then batch_finish(f[3], bk, now) end
    end
  end
end
local function on_done(q, id, jk, result, now) flow_settled(jk, id, true, result, now) end
local function on_fail(q, id, jk, now) flow_settled(jk, id, false, nil, now) end
"""
