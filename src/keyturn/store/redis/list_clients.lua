-- ARGV: P. Returns every registered client's hash.
local found = {}
for _, id in ipairs(redis.call('SMEMBERS', P .. 'clients')) do
  local client = redis.call('HGETALL', P .. 'c:' .. id)
  if #client > 0 then table.insert(found, client) end
end
return found
