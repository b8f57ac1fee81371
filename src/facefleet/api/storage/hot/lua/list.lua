-- ARGV: prefix, tenant ('' for every tenant). Their records.
local tenants
if ARGV[2] ~= '' then tenants = {ARGV[2]} else tenants = redis.call('SMEMBERS', P .. 'tenants') end
local out = {}
for _, tenant in ipairs(tenants) do
  local idx = P .. 'idx:' .. tenant
  for _, worker in ipairs(redis.call('SMEMBERS', idx)) do
    local record = redis.call('HGETALL', P .. 'w:' .. tenant .. '/' .. worker)
    if #record > 0 then
      out[#out + 1] = record
    else
      redis.call('SREM', idx, worker)
    end
  end
  if redis.call('SCARD', idx) == 0 then redis.call('SREM', P .. 'tenants', tenant) end
end
return out
