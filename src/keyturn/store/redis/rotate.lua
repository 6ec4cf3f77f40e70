-- ARGV: P, sid, expected head_jti, expected state, then the session's hash words to set (the new head,
-- the rotated generations, last_seen_at). 1 done, 0 the session changed since it was read.
if not unchanged(ARGV[2], ARGV[3], ARGV[4]) then return 0 end
redis.call('HSET', P .. 's:' .. ARGV[2], unpack(ARGV, 5))
return 1
