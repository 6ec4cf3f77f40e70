-- ARGV: P, now, batch. Returns {entries removed, 1 if a batch was full and there may be more}.
local now, batch = ARGV[2], tonumber(ARGV[3])
local count, more = 0, 0
local sids = redis.call('ZRANGEBYSCORE', P .. 'sessions:exp', '-inf', now, 'LIMIT', 0, batch)
if #sids == batch then more = 1 end
for _, sid in ipairs(sids) do
  local skey = P .. 's:' .. sid
  local sub = redis.call('HGET', skey, 'sub')
  count = count + redis.call('DEL', skey)
  redis.call('ZREM', P .. 'sessions', sid)
  redis.call('ZREM', P .. 'sessions:exp', sid)
  if sub then redis.call('ZREM', P .. 'sub:' .. sub, sid) end
end
local gone = redis.call('ZRANGEBYSCORE', P .. 'rev:exp', '-inf', now, 'LIMIT', 0, batch)
if #gone == batch then more = 1 end
for _, member in ipairs(gone) do
  redis.call('ZREM', P .. 'rev', member)
  count = count + redis.call('ZREM', P .. 'rev:exp', member)
  local kind, value = string.match(member, '^%d+|(%a+)|[^|]*|(.*)$')
  if kind == 'jti' then redis.call('ZREM', P .. 'rev:jti', value) end
end
return {count, more}
