-- KEYS: counter, stream, channel. ARGV: payload, maxlen.
local seq = redis.call('INCR', KEYS[1])
if seq == 1 then
  -- A new counter continues after the stream if one survived it.
  local last = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)
  if #last > 0 then
    seq = tonumber(string.match(last[1][1], '^%d+')) + 1
    redis.call('SET', KEYS[1], seq)
  end
end
local id = string.format('%d', seq)
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], id .. '-0', 'e', ARGV[1])
redis.call('PUBLISH', KEYS[3], id .. ' ' .. ARGV[1])
return seq
