-- ARGV: prefix, member, record_ms, only_if_absent, worker_id, tenant_id, field, value, ...
local member, key = ARGV[2], P .. 'w:' .. ARGV[2]
if ARGV[4] == '1' and redis.call('EXISTS', key) == 1 then return 0 end
redis.call('DEL', key, P .. 'pending:' .. member)
redis.call('HSET', key, unpack(ARGV, 7))
redis.call('SADD', P .. 'idx:' .. ARGV[6], ARGV[5])
redis.call('SADD', P .. 'tenants', ARGV[6])
reindex(member, ARGV[3])
return 1
