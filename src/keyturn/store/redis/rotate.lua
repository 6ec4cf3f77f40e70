-- ARGV: P, sid, expected head_jti, expected state, now, new jti, new record's sid, gen, expires_at,
-- record ttl, then the new record's words. 1 done, 0 the session changed, -1 the new jti exists.
local sid, old, state, now = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local jti, rsid, gen, rexp, rttl = ARGV[6], ARGV[7], ARGV[8], ARGV[9], tonumber(ARGV[10])
if not unchanged(sid, old, state) then return 0 end
if redis.call('EXISTS', P .. 'r:' .. jti) == 1 then return -1 end
local oldkey = P .. 'r:' .. old
if redis.call('EXISTS', oldkey) == 1 then redis.call('HSET', oldkey, 'rotated_at', now) end
write_refresh(11, #ARGV, jti, rsid, rexp, rttl)
redis.call('HSET', P .. 's:' .. sid, 'head_jti', jti, 'gen', gen, 'last_seen_at', now)
return 1
