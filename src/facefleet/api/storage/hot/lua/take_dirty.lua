-- ARGV: prefix.
local members = redis.call('SMEMBERS', P .. 'dirty')
redis.call('DEL', P .. 'dirty')
local out = {}
for _, member in ipairs(members) do
  local f = redis.call('HMGET', P .. 'w:' .. member, 'pk', 'last_seen', 'status', 'metrics')
  if f[1] then out[#out + 1] = f end
end
return out
