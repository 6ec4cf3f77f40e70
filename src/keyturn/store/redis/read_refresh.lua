-- ARGV: P, sid, jti, number of rate-limit takes n, then n times: key, now, interval, tolerance. Returns
-- {session, presented record, head record unless it is the presented one}, or, if take number i refused,
-- {{}, {}, {}, i, microseconds to wait} and nothing read (the takes before it stand).
local sid, jti = ARGV[2], ARGV[3]
for i = 1, tonumber(ARGV[4]) do
  local at = 1 + 4 * i
  local wait = take(ARGV[at], ARGV[at + 1], ARGV[at + 2], ARGV[at + 3])
  if wait > 0 then return {{}, {}, {}, i, wait} end
end
local skey = P .. 's:' .. sid
local session = redis.call('HGETALL', skey)
local presented = redis.call('HGETALL', P .. 'r:' .. jti)
local head = {}
if #session > 0 then
  local head_jti = redis.call('HGET', skey, 'head_jti')
  if head_jti ~= jti then head = redis.call('HGETALL', P .. 'r:' .. head_jti) end
end
return {session, presented, head}
