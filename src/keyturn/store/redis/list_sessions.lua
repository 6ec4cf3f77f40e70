-- ARGV: P, index key (without prefix), '1' to include revoked sessions. Returns session hashes.
local found = {}
for _, sid in ipairs(redis.call('ZRANGE', P .. ARGV[2], 0, -1)) do
  local key = P .. 's:' .. sid
  local state = redis.call('HGET', key, 'state')
  if state == 'active' or (state and ARGV[3] == '1') then
    table.insert(found, redis.call('HGETALL', key))
  end
end
return found
