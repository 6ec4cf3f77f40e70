-- ARGV: P, sid, sub, created_at, absolute_expires_at, session ttl, then the session's hash words (its
-- refresh chain's among them: no record per refresh token). 1 created, 0 the sid is taken.
local sid, sub, created, ends, sttl = ARGV[2], ARGV[3], ARGV[4], ARGV[5], tonumber(ARGV[6])
local skey = P .. 's:' .. sid
if redis.call('EXISTS', skey) == 1 then return 0 end
redis.call('HSET', skey, unpack(ARGV, 7))
redis.call('EXPIRE', skey, sttl)
redis.call('ZADD', P .. 'sessions', created, sid)
redis.call('ZADD', P .. 'sessions:exp', ends, sid)
local byuser = P .. 'sub:' .. sub
redis.call('ZADD', byuser, created, sid)
keep_at_least(byuser, sttl)
return 1
