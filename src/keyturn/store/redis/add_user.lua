-- ARGV: P, username, then the user's hash words.
local key = P .. 'u:' .. ARGV[2]
if redis.call('EXISTS', key) == 1 then return 0 end
redis.call('HSET', key, unpack(ARGV, 3))
redis.call('SADD', P .. 'users', ARGV[2])
return 1
