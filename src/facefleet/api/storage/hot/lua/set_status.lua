-- ARGV: prefix, member, record_ms, status, desired_state ('' keeps it), has_stop,
-- stop_deadline, has_mode, stop_mode.
local member, key = ARGV[2], P .. 'w:' .. ARGV[2]
if redis.call('EXISTS', key) == 0 then return false end
redis.call('HSET', key, 'status', ARGV[4])
if ARGV[5] ~= '' then redis.call('HSET', key, 'desired_state', ARGV[5]) end
if ARGV[6] == '1' then
  redis.call('HSET', key, 'stop_deadline', ARGV[7])
  if ARGV[8] == '1' then
    redis.call('HSET', key, 'stop_mode', ARGV[9])
  else
    redis.call('HDEL', key, 'stop_mode')
  end
end
reindex(member, ARGV[3])
dirty(member, ARGV[3])
return redis.call('HGETALL', key)
