-- ARGV: prefix, member, record_ms, mode, token, then for 'lost' the deadline. 'open': the
-- stream ``token`` is the worker's channel, and an expiry set for a lost one is lifted.
-- 'lost': that stream broke off; unless another replaced it, the worker expires at the
-- deadline. 1 when it changed the record.
local member, key = ARGV[2], P .. 'w:' .. ARGV[2]
local status = redis.call('HGET', key, 'status')
if not status or not LIVE[status] then return 0 end
if ARGV[4] == 'open' then
  redis.call('HSET', key, 'presence', ARGV[5])
  redis.call('HDEL', key, 'presence_deadline')
elseif redis.call('HGET', key, 'presence') == ARGV[5] then
  redis.call('HSET', key, 'presence_deadline', ARGV[6])
else
  return 0
end
reindex(member, ARGV[3])
return 1
