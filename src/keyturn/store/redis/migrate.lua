-- ARGV: P, batch. Moves sessions written before state per session (issue 21) to it, a batch of refresh
-- records at a time: a session's head record gives its hash the head's signing fields, its records rotated
-- within the last 16 generations become its rotated generations ('gen jti rotated_at', see _chain.py),
-- and its records go. Returns 1 once nothing is left (the schema key then says 2), 0 if more remain.
local schema = P .. 'schema'
if tonumber(redis.call('GET', schema) or '0') >= 2 then return 1 end
local index = P .. 'refresh:exp'
local jtis = redis.call('ZRANGE', index, 0, tonumber(ARGV[2]) - 1)
for _, jti in ipairs(jtis) do
  local rkey = P .. 'r:' .. jti
  local sid = redis.call('HGET', rkey, 'sid')
  local skey = sid and (P .. 's:' .. sid)
  if skey and redis.call('HEXISTS', skey, 'head_kid') == 0 and redis.call('EXISTS', skey) == 1 then
    local gen = tonumber(redis.call('HGET', skey, 'gen'))
    local head = redis.call('HMGET', P .. 'r:' .. redis.call('HGET', skey, 'head_jti'), 'kid', 'issued_at', 'expires_at')
    local rotated = {}
    local ids = P .. 'sj:' .. sid
    for _, old in ipairs(redis.call('SMEMBERS', ids)) do
      local r = redis.call('HMGET', P .. 'r:' .. old, 'gen', 'rotated_at')
      if r[1] and r[2] and tonumber(r[1]) >= gen - 16 then
        table.insert(rotated, r[1] .. ' ' .. old .. ' ' .. r[2])
      end
      redis.call('DEL', P .. 'r:' .. old)
      redis.call('ZREM', index, old)
    end
    redis.call('DEL', ids)
    redis.call('HSET', skey, 'head_kid', head[1] or '', 'head_issued_at', head[2] or '0',
      'head_expires_at', head[3] or '0', 'rotated', table.concat(rotated, ','))
  end
  redis.call('DEL', rkey)
  redis.call('ZREM', index, jti)
end
if #jtis > 0 then return 0 end
redis.call('SET', schema, '2')
return 1
