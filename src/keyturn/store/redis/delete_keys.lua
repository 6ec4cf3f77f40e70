-- ARGV: P, then the ids of the keys to delete.
local deleted = 0
for i = 2, #ARGV do
  deleted = deleted + redis.call('HDEL', P .. 'keys', ARGV[i])
  redis.call('ZREM', P .. 'keys:order', ARGV[i])
end
return deleted
