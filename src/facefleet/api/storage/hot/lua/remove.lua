-- ARGV: prefix, member, record_ms, only_if_offline.
local member, key = ARGV[2], P .. 'w:' .. ARGV[2]
if ARGV[4] == '1' then
  local status = redis.call('HGET', key, 'status')
  if status and status ~= 'offline' then return 0 end
end
redis.call('DEL', key, commands_key(member))
redis.call('SREM', P .. 'dirty', member)
reindex(member, ARGV[3])
return 1
