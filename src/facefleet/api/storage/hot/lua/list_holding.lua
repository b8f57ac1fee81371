-- ARGV: prefix, record_ms, index set ('offline' or 'draining'). Its records holding leases.
local out = {}
for _, member in ipairs(redis.call('SMEMBERS', P .. ARGV[3])) do
  local key = P .. 'w:' .. member
  if redis.call('HGET', key, 'status') == ARGV[3] then
    if has_leases(key) then out[#out + 1] = redis.call('HGETALL', key) end
  else
    reindex(member, ARGV[2])
  end
end
return out
