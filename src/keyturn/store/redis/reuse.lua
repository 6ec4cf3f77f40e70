-- ARGV: P, sid, expected head_jti, expected state, now, revocation expires_at. 1 done, 0 changed.
if not unchanged(ARGV[2], ARGV[3], ARGV[4]) then return 0 end
revoke(ARGV[2], 'reuse', ARGV[5], ARGV[6])
return 1
