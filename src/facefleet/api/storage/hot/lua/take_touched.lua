-- ARGV: prefix.
local tenants = redis.call('SMEMBERS', P .. 'touched')
redis.call('DEL', P .. 'touched')
local out = {}
for _, tenant in ipairs(tenants) do
  local key = P .. 'touched:' .. tenant
  out[#out + 1] = {tenant, redis.call('HGETALL', key)}
  redis.call('DEL', key)
end
return out
