-- ARGV: P, sid, number of rate-limit takes n, then n times: key, now, interval, tolerance, then a username
-- or nothing. Returns {session} (its hash, its refresh chain within it), with a username {session, 1 if
-- that user of the built-in user store may hold a session (there and not disabled), else 0}, or, if take
-- number i refused, {{}, i, microseconds to wait} and nothing read (the takes before it stand).
local n = tonumber(ARGV[3])
for i = 1, n do
  local at = 4 * i
  local wait = take(ARGV[at], ARGV[at + 1], ARGV[at + 2], ARGV[at + 3])
  if wait > 0 then return {{}, i, wait} end
end
local session = redis.call('HGETALL', P .. 's:' .. ARGV[2])
local user = ARGV[4 * n + 4]
if user == nil then return {session} end
local allowed = 0
if redis.call('HGET', P .. 'u:' .. user, 'disabled') == '0' then allowed = 1 end
return {session, allowed}
