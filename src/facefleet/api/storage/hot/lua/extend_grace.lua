-- ARGV: prefix, record_ms, now, ttl.
local now = tonumber(ARGV[3])
local count = 0
for _, member in ipairs(redis.call('ZRANGE', P .. 'due', 0, -1)) do
  local key = P .. 'w:' .. member
  local f = redis.call('HMGET', key, 'status', 'deadline')
  if f[1] and LIVE[f[1]] then
    if f[1] == 'suspect' then redis.call('HSET', key, 'status', 'online') end
    local deadline = math.max(tonumber(f[2]), now + tonumber(ARGV[4]))
    redis.call('HSET', key, 'last_seen', ARGV[3], 'deadline', fmt(deadline))
    redis.call('HDEL', key, 'presence_deadline')
    dirty(member, ARGV[2])
    count = count + 1
  end
  reindex(member, ARGV[2])
end
return count
