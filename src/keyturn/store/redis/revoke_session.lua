-- ARGV: P, sid, reason, now, revocation expires_at.
if revoke(ARGV[2], ARGV[3], ARGV[4], ARGV[5]) then return 1 end
return 0
