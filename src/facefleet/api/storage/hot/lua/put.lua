-- ARGV: prefix, member, record_ms, only_if_absent, worker_id, tenant_id, now, n, then n
-- command id/item pairs, then the record's field/value pairs. Returns the new generation
-- (0 when only_if_absent found a record).
local member, key = ARGV[2], P .. 'w:' .. ARGV[2]
if ARGV[4] == '1' and redis.call('EXISTS', key) == 1 then return 0 end
local generation = next_generation(key, ARGV[7])
local cmds = commands_key(member)
local given
redis.call('DEL', key, cmds)
local n = tonumber(ARGV[8])
local first_field = 9 + 2 * n
redis.call('HSET', key, unpack(ARGV, first_field))
-- The caller may ask for a floor (the generation it already told the worker).
given = tonumber(redis.call('HGET', key, 'generation') or '0')
generation = math.max(generation, given)
redis.call('HSET', key, 'generation', string.format('%.0f', generation))
if n > 0 then
  redis.call('HSET', cmds, unpack(ARGV, 9, first_field - 1))
  redis.call('PEXPIRE', cmds, ARGV[3])
end
redis.call('SADD', P .. 'idx:' .. ARGV[6], ARGV[5])
redis.call('SADD', P .. 'tenants', ARGV[6])
reindex(member, ARGV[3])
return generation
