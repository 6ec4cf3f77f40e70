-- ARGV: P, sid, number of rate-limit takes n, then n times: key, now, interval, tolerance. Returns
-- {session} (its hash, its refresh chain within it), or, if take number i refused, {{}, i, microseconds
-- to wait} and nothing read (the takes before it stand).
for i = 1, tonumber(ARGV[3]) do
  local at = 4 * i
  local wait = take(ARGV[at], ARGV[at + 1], ARGV[at + 2], ARGV[at + 3])
  if wait > 0 then return {{}, i, wait} end
end
return {redis.call('HGETALL', P .. 's:' .. ARGV[2])}
