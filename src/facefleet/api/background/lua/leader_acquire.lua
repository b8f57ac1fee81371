-- KEYS: lock, fence counter. ARGV: owner, ttl_ms. The token (or nil when the lock is held).
if redis.call('EXISTS', KEYS[1]) == 1 then return false end
local token = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1] .. ':' .. token, 'NX', 'PX', ARGV[2])
return token
