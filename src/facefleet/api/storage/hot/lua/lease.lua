-- ARGV: prefix, member, record_ms, field, epoch ('' drops the lease).
local member, key = ARGV[2], P .. 'w:' .. ARGV[2]
if redis.call('EXISTS', key) == 0 then return 0 end
if ARGV[5] == '' then
  redis.call('HDEL', key, ARGV[4])
else
  redis.call('HSET', key, ARGV[4], ARGV[5])
end
reindex(member, ARGV[3])
return 1
