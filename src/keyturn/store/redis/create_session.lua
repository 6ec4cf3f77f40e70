-- ARGV: P, sid, sub, created_at, absolute_expires_at, session ttl, jti, record sid, expires_at,
-- record ttl, number of session hash words n, n session words, then the record's words.
local sid, sub, created, ends, sttl = ARGV[2], ARGV[3], ARGV[4], ARGV[5], tonumber(ARGV[6])
local jti, rsid, rexp, rttl = ARGV[7], ARGV[8], ARGV[9], tonumber(ARGV[10])
local n = tonumber(ARGV[11])
local skey = P .. 's:' .. sid
if redis.call('EXISTS', skey) == 1 or redis.call('EXISTS', P .. 'r:' .. jti) == 1 then return 0 end
redis.call('HSET', skey, unpack(ARGV, 12, 11 + n))
redis.call('EXPIRE', skey, sttl)
redis.call('ZADD', P .. 'sessions', created, sid)
redis.call('ZADD', P .. 'sessions:exp', ends, sid)
local byuser = P .. 'sub:' .. sub
redis.call('ZADD', byuser, created, sid)
keep_at_least(byuser, sttl)
write_refresh(12 + n, #ARGV, jti, rsid, rexp, rttl)
keep_at_least(P .. 'sj:' .. sid, sttl)
return 1
