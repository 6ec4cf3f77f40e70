-- ARGV: P. Returns every user's hash.
local found = {}
for _, name in ipairs(redis.call('SMEMBERS', P .. 'users')) do
  local user = redis.call('HGETALL', P .. 'u:' .. name)
  if #user > 0 then table.insert(found, user) end
end
return found
