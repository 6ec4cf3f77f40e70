-- ARGV: P, number of candidates n, then n times: kid, use, alg, '1' if active, JSON.
-- Returns {1, every key's JSON in the order added}, or {0} if a kid to add is taken (nothing added).
local all, order, seq = P .. 'keys', P .. 'keys:order', P .. 'keys:seq'
local taken, active = {}, {}
for _, text in ipairs(redis.call('HVALS', all)) do
  local key = cjson.decode(text)
  taken[key.kid] = true
  if key.active == true then active[key.use .. '\n' .. key.alg] = true end
end
local adds = {}
for i = 0, tonumber(ARGV[2]) - 1 do
  local at = 3 + 5 * i
  local kid, kind = ARGV[at], ARGV[at + 1] .. '\n' .. ARGV[at + 2]
  if not active[kind] then
    if taken[kid] then return {0} end
    taken[kid] = true
    if ARGV[at + 3] == '1' then active[kind] = true end
    table.insert(adds, at)
  end
end
for _, at in ipairs(adds) do
  redis.call('ZADD', order, redis.call('INCR', seq), ARGV[at])
  redis.call('HSET', all, ARGV[at], ARGV[at + 4])
end
local kids = redis.call('ZRANGE', order, 0, -1)
if #kids == 0 then return {1, {}} end
return {1, redis.call('HMGET', all, unpack(kids))}
