-- Shared by every script (prepended to each): the key prefix and the helpers.
-- Every script takes the key prefix as ARGV[1].
local P = ARGV[1]

local function keep_at_least(key, ttl)
  if redis.call('TTL', key) < ttl then redis.call('EXPIRE', key, ttl) end
end

local function add_revocation(kind, value, expires_at)
  local seq = string.format('%d', redis.call('INCR', P .. 'rev:seq'))
  local member = seq .. '|' .. kind .. '|' .. expires_at .. '|' .. value
  redis.call('ZADD', P .. 'rev', seq, member)
  redis.call('ZADD', P .. 'rev:exp', expires_at, member)
end

local function revoke(sid, reason, now, expires_at)
  local key = P .. 's:' .. sid
  if redis.call('HGET', key, 'state') ~= 'active' then return false end
  redis.call('HSET', key, 'state', 'revoked', 'revoked_reason', reason, 'revoked_at', now)
  add_revocation('sid', sid, expires_at)
  return true
end

-- One call from the rate-limit bucket (GCRA as RateLimit.take; integers, microseconds): 0 and the bucket
-- moved on, or the microseconds to wait and nothing written. The bucket expires when it is full again
-- (its TAT), as a duration from the caller's now, so a test's frozen clock works too.
local function take(name, now, t, tau)
  local key = P .. 'rl:' .. name
  now, t, tau = tonumber(now), tonumber(t), tonumber(tau)
  local tat = tonumber(redis.call('GET', key) or now) or now
  if tat < now then tat = now end
  local new = tat + t
  local wait = new - tau - now
  if wait > 0 then return wait end
  redis.call('SET', key, string.format('%d', new), 'PX', math.ceil((new - now) / 1000))
  return 0
end

local function unchanged(sid, head_jti, state)
  local seen = redis.call('HMGET', P .. 's:' .. sid, 'head_jti', 'state')
  return seen[1] == head_jti and seen[2] == state
end
