"""Per-user rate limits: a token bucket per user, kept in Redis.

In Redis (not in the process) so that every replica of the API behind one Service
counts the same requests: the audio-separation service's "10 requests per minute per
user" holds however many replicas run. One Lua call per request: it refills the bucket
from the time passed (Redis's own clock, so replicas' clocks do not matter), takes a
token if there is one, and says how long to wait when there is not.
"""

from __future__ import annotations

import math

import redis.asyncio as aioredis

from queueworker.api.settings import RateLimit

# KEYS[1] the bucket; ARGV: capacity, refill per second -> {allowed, retry after, tokens left}
BUCKET = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local cap = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local b = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(b[1]) or cap
local ts = tonumber(b[2]) or now
tokens = math.min(cap, tokens + math.max(0, now - ts) * rate)
local allowed = 0
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
else
  wait = (1 - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(cap / rate * 1000) + 1000)
return {allowed, tostring(wait), tostring(tokens)}
"""


def bucket_key(user: str, prefix: str) -> str:
    return f"{prefix}:api:rate:{user}"


class RateLimiter:
    def __init__(self, client: aioredis.Redis, limit: RateLimit | None, prefix: str) -> None:
        self.limit = limit
        self.prefix = prefix
        self._script = client.register_script(BUCKET)

    async def take(self, user: str) -> tuple[bool, int, int]:
        """(allowed, seconds to wait before retrying, requests left now)."""
        if self.limit is None:
            return True, 0, 0
        allowed, wait, left = await self._script(
            keys=[bucket_key(user, self.prefix)],
            args=[self.limit.requests, repr(self.limit.per_second)])
        return bool(int(allowed)), math.ceil(float(wait)), int(float(left))
