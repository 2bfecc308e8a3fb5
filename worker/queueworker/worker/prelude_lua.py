"""PRELUDE: the Lua helpers every script of the native layout starts with (key names as
keys.py builds them, the server's clock, priority levels, junk filing, due delayed jobs).
The scripts themselves are in scripts.py, fetch_lua.py and flows_lua.py."""

from __future__ import annotations

# The shebang makes Redis (7+) refuse a writing script *before* it runs when
# the server is out of memory. Without it the OOM check happens per command, so
# a script could pop a job (RPOP/ZREM are allowed under OOM) and then fail on
# the ZADD that records it in flight: the job would be lost
# (tests/faults/test_faults_redis_errors.py).
PRELUDE = """#!lua
local P = ARGV[1]
local function qkey(q, name) return P .. ':{' .. q .. '}:' .. name end
-- A job id ends in '@' + its queue's name, bytes outside [%w_.:-] escaped as ~xx
-- (keys.id_suffix): its hash is in the queue's slot. An id without it (enqueued before
-- ids carried the queue) keeps the old key (keys.legacy_job).
local function id_queue(id)
  local e = string.match(id, '@([%w_.:~%-]+)$')
  if e and string.find(e, '~', 1, true) then
    e = string.gsub(e, '~(%x%x)', function(h) return string.char(tonumber(h, 16)) end)
  end
  return e
end
local function jkey(id)
  local q = id_queue(id)
  if q then return P .. ':{' .. q .. '}:job:' .. id end
  return P .. ':job:' .. id
end
local function id_suffix(q)
  return '@' .. string.gsub(q, '[^%w_.:%-]', function(c)
    return string.format('~%02x', string.byte(c)) end)
end
local function now_s()
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end
-- Given KEYS (a Redis Cluster: the key the call is routed by), keys of other slots are out
-- of reach: a legacy key (no queue in it) is not looked at.
local CLUSTER = KEYS[1] ~= nil
local function release_unique(q, uk, id)
  if uk and uk ~= '' then
    local k = qkey(q, 'unique:' .. uk)
    if redis.call('GET', k) == id then redis.call('DEL', k) end
  end
end
-- Priorities (keys.waiting): one list per level, 5 keeps the plain key. A stored
-- priority that is not a number means 5; out of range is clamped (keys.priority_level).
local function level(p)
  p = tonumber(p)
  if not p or p ~= p then return 5 end
  p = math.floor(p)
  if p < 1 then return 1 elseif p > 10 then return 10 end
  return p
end
local function wkey(q, p)
  if p == 5 then return qkey(q, 'waiting') end
  return qkey(q, 'waiting:p' .. p)
end
-- HMGET that answers nil when the job key is not a hash (a hand-written key must not
-- abort a script half way: Lua scripts are not rolled back, popped ids would vanish).
local function jgetk(jk, ...)  -- (the key given: a hot script builds it once per job)
  local h = redis.pcall('HMGET', jk, ...)
  if h.err then return nil end
  return h
end
local function jget(id, ...) return jgetk(jkey(id), ...) end
-- The waiting list an id goes (back) to: its job's level (no hash: the default).
local function wkey_of(q, id)
  local h = jget(id, 'priority')
  return wkey(q, level(h and h[1]))
end
-- An id is ours to use as a key when it is printable ASCII without spaces, 1..200 bytes,
-- and, on a Redis Cluster, names the queue q it was found in (its hash is in q's slot).
local function usable_id(id, q)  -- (an anchored find: half the time of a search for a bad byte)
  return #id <= 200 and string.find(id, '^[!-~]+$') ~= nil and (not CLUSTER or id_queue(id) == q)
end
-- An entry that cannot run (no job hash, not an id, its key not a hash) goes to the
-- failed store under a job hash of its own, with the reason; nothing vanishes.
-- -> the failed store id (the entry itself, or a new one when it is no usable key).
local function junk(q, entry, now, reason, why)
  local id = entry
  if not usable_id(entry, q) or redis.call('EXISTS', jkey(entry)) == 1 then
    local t = redis.call('TIME')
    id = t[1] .. string.format('%03d', math.floor(tonumber(t[2]) / 1000)) .. '-junk-' .. t[2]
      .. id_suffix(q)
    while redis.call('EXISTS', jkey(id)) == 1 do id = id .. 'x' end
  end
  local shown = entry
  if id ~= entry then  -- keep the entry readable: bytes outside printable ASCII escaped
    shown = string.gsub(string.sub(entry, 1, 4096), '[^ -~]', function(c)
      return string.format('\\\\x%02x', string.byte(c)) end)
  end
  redis.call('HSET', jkey(id), 'queue', q, 'payload', shown, 'state', 'failed',
    'error', why, 'reason', reason, 'traceback', '', 'failed_at', tostring(now),
    'deliveries', '0', 'tries', '0', 'max_tries', '1', 'lost', '0')
  redis.call('ZADD', qkey(q, 'failed'), now, id)
  redis.call('HINCRBY', qkey(q, 'stats'), 'failed', 1)
  redis.call('HINCRBY', qkey(q, 'stats'), 'junk', 1)
  return id
end
local function promote_due(q, now, limit)
  local due = redis.call('ZRANGEBYSCORE', qkey(q, 'delayed'), '-inf', now, 'LIMIT', 0, limit)
  if #due > 0 then
    redis.call('ZREM', qkey(q, 'delayed'), unpack(due))
    for _, id in ipairs(due) do
      local h = usable_id(id, q) and jget(id, 'queue', 'priority')
      -- no hash (or no key): not created here; the FETCH that takes it files it as junk
      if h and h[1] then redis.call('HSET', jkey(id), 'state', 'waiting') end
      redis.call('LPUSH', wkey(q, level(h and h[2])), id)
    end
  end
  return #due
end
"""
