-- ARGV: P, sub, reason, now, revocation expires_at. Returns the revoked sids, oldest session first.
local done = {}
for _, sid in ipairs(redis.call('ZRANGE', P .. 'sub:' .. ARGV[2], 0, -1)) do
  if revoke(sid, ARGV[3], ARGV[4], ARGV[5]) then table.insert(done, sid) end
end
return done
