-- ARGV: prefix, member, record_ms, now, ttl, has_metrics, metrics, session_hash, rate_ms,
-- second, has_streams, streams. The hot path: the indexes are updated directly (a live
-- worker stays live). Returns recovered, the record, and the deliverable commands, which
-- stay deliverable until acknowledged.
local member, key = ARGV[2], P .. 'w:' .. ARGV[2]
local f = redis.call('HMGET', key, 'status', 'session_hash', 'deadline', 'stop_deadline')
local status = f[1]
if not status or not LIVE[status] then return false end
if ARGV[8] ~= '' and f[2] ~= ARGV[8] then return 'mismatch' end
local now = tonumber(ARGV[4])
local recovered = '0'
if status == 'suspect' then
  status = 'online'
  redis.call('HSET', key, 'status', status)
  recovered = '1'
end
local deadline = math.max(tonumber(f[3]), now + tonumber(ARGV[5]))
redis.call('HSET', key, 'last_seen', ARGV[4], 'deadline', fmt(deadline))
-- It speaks: whatever its presence channel does, it lives.
redis.call('HDEL', key, 'presence_deadline')
local touched = ''
if ARGV[6] == '1' then
  redis.call('HSET', key, 'metrics', ARGV[7])
  touched = ARGV[7]
end
if ARGV[11] == '1' then redis.call('HSET', key, 'streams', ARGV[12]) end
redis.call('PEXPIRE', key, ARGV[3])
local due = deadline
if f[4] then due = math.min(due, tonumber(f[4])) end
redis.call('ZADD', P .. 'due', fmt(due), member)
if status == 'online' then redis.call('ZADD', P .. 'quiet', ARGV[4], member) end
dirty(member, ARGV[3])
local rate = P .. 'rate:' .. ARGV[10]
redis.call('INCR', rate)
redis.call('PEXPIRE', rate, ARGV[9])
local tenant, worker = split(member)
redis.call('HSET', P .. 'touched:' .. tenant, worker, touched)
redis.call('PEXPIRE', P .. 'touched:' .. tenant, ARGV[3])
redis.call('SADD', P .. 'touched', tenant)
redis.call('PEXPIRE', P .. 'touched', ARGV[3])
local cmds = commands_key(member)
local items = redis.call('HGETALL', cmds)
if #items > 0 then
  redis.call('PEXPIRE', cmds, ARGV[3])
  for i = 1, #items, 2 do redis.call('SADD', P .. 'delivered', items[i]) end
  redis.call('PEXPIRE', P .. 'delivered', ARGV[3])
end
return {recovered, redis.call('HGETALL', key), items}
