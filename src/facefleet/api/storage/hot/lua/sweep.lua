-- ARGV: prefix, now, suspect_after, record_ms, slack, limit, tenant ("<tenant_id>/", or ""
-- for every tenant). Only workers whose deadline passed or whose last heartbeat is older
-- than suspect_after (plus a little slack, so the exact test below decides) are looked at,
-- at most ``limit`` of each per pass; with a tenant, only that tenant's are touched.
local now = tonumber(ARGV[2])
local suspect_after = tonumber(ARGV[3])
local record_ms = ARGV[4]
local out = {}
local limit = tonumber(ARGV[6])
local tenant = ARGV[7] or ''
local function mine(member)
  return tenant == '' or string.sub(member, 1, #tenant) == tenant
end
local due = redis.call('ZRANGEBYSCORE', P .. 'due', '-inf', ARGV[2], 'LIMIT', 0, limit)
for _, member in ipairs(due) do
  if mine(member) then
    local key = P .. 'w:' .. member
    local f = redis.call('HMGET', key, 'status', 'deadline', 'stop_deadline', 'presence_deadline')
    local status = f[1]
    if status and LIVE[status] then
      local overdue = (f[3] and now >= tonumber(f[3])) or (f[4] and now >= tonumber(f[4]))
      if now >= tonumber(f[2]) or overdue then
        redis.call('HSET', key, 'status', 'offline')
        dirty(member, record_ms)
        out[#out + 1] = {'expired', status, redis.call('HGETALL', key)}
      end
    end
    reindex(member, record_ms)
  end
end
local bound = fmt(now - suspect_after + tonumber(ARGV[5]))
local quiet = redis.call('ZRANGEBYSCORE', P .. 'quiet', '-inf', bound, 'LIMIT', 0, limit)
for _, member in ipairs(quiet) do
  if mine(member) then
    local key = P .. 'w:' .. member
    local f = redis.call('HMGET', key, 'status', 'last_seen')
    if f[1] == 'online' and now - tonumber(f[2]) >= suspect_after then
      redis.call('HSET', key, 'status', 'suspect')
      dirty(member, record_ms)
      out[#out + 1] = {'suspect', 'online', redis.call('HGETALL', key)}
      reindex(member, record_ms)
    elseif f[1] ~= 'online' then
      reindex(member, record_ms)
    end
  end
end
return out
