-- ARGV: P, username, then the hash words to change (maybe none).
local key = P .. 'u:' .. ARGV[2]
if redis.call('EXISTS', key) == 0 then return 0 end
if #ARGV > 2 then redis.call('HSET', key, unpack(ARGV, 3)) end
return 1
