-- ARGV: P, jti, expires_at.
local jti, expires_at = ARGV[2], ARGV[3]
if redis.call('ZSCORE', P .. 'rev:jti', jti) then return 0 end
redis.call('ZADD', P .. 'rev:jti', expires_at, jti)
add_revocation('jti', jti, expires_at)
return 1
