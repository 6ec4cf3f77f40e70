-- ARGV: P, client_id. Returns 1 if the client was there, 0 if not.
local removed = redis.call('DEL', P .. 'c:' .. ARGV[2])
redis.call('SREM', P .. 'clients', ARGV[2])
return removed
