-- ARGV: P, client_id, then the client's hash words. Returns 1 if added, 0 if the id is taken.
local key = P .. 'c:' .. ARGV[2]
if redis.call('EXISTS', key) == 1 then return 0 end
redis.call('HSET', key, unpack(ARGV, 3))
redis.call('SADD', P .. 'clients', ARGV[2])
return 1
