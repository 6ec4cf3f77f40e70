-- ARGV: P, then kid and JSON of each key. 1 added all, 0 a kid is taken (nothing added).
local all, order, seq = P .. 'keys', P .. 'keys:order', P .. 'keys:seq'
local seen = {}
for i = 2, #ARGV, 2 do
  if seen[ARGV[i]] or redis.call('HEXISTS', all, ARGV[i]) == 1 then return 0 end
  seen[ARGV[i]] = true
end
for i = 2, #ARGV, 2 do
  redis.call('ZADD', order, redis.call('INCR', seq), ARGV[i])
  redis.call('HSET', all, ARGV[i], ARGV[i + 1])
end
return 1
