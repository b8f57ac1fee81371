-- One token from a rate-limit bucket, or how long until one is there (the same arithmetic
-- as MemoryHotStore.take_token). A bucket starts full (burst tokens), gains rate tokens a
-- second up to burst, and is forgotten once it would be full again.
-- ARGV: prefix, bucket, rate, burst, now. Returns the wait in seconds ('0': taken).
local key = P .. 'bucket:' .. ARGV[2]
local rate = tonumber(ARGV[3])
local burst = tonumber(ARGV[4])
local now = tonumber(ARGV[5])
local state = redis.call('HMGET', key, 'tokens', 'at')
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or now
if now > at then
  tokens = math.min(burst, tokens + (now - at) * rate)
  at = now
end
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
else
  wait = (1 - tokens) / rate
end
redis.call('HSET', key, 'tokens', fmt(tokens), 'at', fmt(at))
redis.call('PEXPIRE', key, math.ceil((burst - tokens) / rate * 1000) + 1000)
return fmt(wait)
