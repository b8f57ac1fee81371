-- Helpers shared by the scripts, which also get LIVE, the set of live statuses, defined
-- from the protocol's LIVE_STATUSES when the scripts are loaded. Every script gets the
-- prefix as ARGV[1]; scripts about one worker get its member name as ARGV[2] and the record
-- expiry (ms) as ARGV[3].
local P = ARGV[1]

local function fmt(number)
  return string.format('%.17g', number)
end

local function split(member)
  local tenant, worker = string.match(member, '^(.*)/([^/]*)$')
  return tenant, worker
end

local function has_leases(key)
  for _, name in ipairs(redis.call('HKEYS', key)) do
    if string.sub(name, 1, 6) == 'lease:' then return true end
  end
  return false
end

-- Bring the indexes in line with the record (or its absence), and set its expiry: a
-- record lives record_ms past its last write, except an offline one that still holds
-- leases, which the reaper retries releasing until the database accepts it.
local function reindex(member, record_ms)
  local key = P .. 'w:' .. member
  local f = redis.call(
    'HMGET', key, 'status', 'deadline', 'stop_deadline', 'last_seen', 'presence_deadline'
  )
  local status = f[1]
  if not status then
    local tenant, worker = split(member)
    local idx = P .. 'idx:' .. tenant
    redis.call('ZREM', P .. 'due', member)
    redis.call('ZREM', P .. 'quiet', member)
    redis.call('SREM', P .. 'offline', member)
    redis.call('SREM', P .. 'draining', member)
    redis.call('SREM', idx, worker)
    if redis.call('SCARD', idx) == 0 then redis.call('SREM', P .. 'tenants', tenant) end
    return false
  end
  if LIVE[status] then
    local due = tonumber(f[2])
    if f[3] then due = math.min(due, tonumber(f[3])) end
    if f[5] then due = math.min(due, tonumber(f[5])) end
    redis.call('ZADD', P .. 'due', fmt(due), member)
  else
    redis.call('ZREM', P .. 'due', member)
  end
  if status == 'online' then
    redis.call('ZADD', P .. 'quiet', f[4], member)
  else
    redis.call('ZREM', P .. 'quiet', member)
  end
  if status == 'offline' then
    redis.call('SADD', P .. 'offline', member)
  else
    redis.call('SREM', P .. 'offline', member)
  end
  if status == 'draining' then
    redis.call('SADD', P .. 'draining', member)
  else
    redis.call('SREM', P .. 'draining', member)
  end
  if status == 'offline' and has_leases(key) then
    redis.call('PERSIST', key)
  else
    redis.call('PEXPIRE', key, record_ms)
  end
  return true
end

local function dirty(member, record_ms)
  redis.call('SADD', P .. 'dirty', member)
  redis.call('PEXPIRE', P .. 'dirty', record_ms)
end

-- A worker's next lease generation (base.next_generation): the clock in microseconds, or
-- one more than the last one.
local function next_generation(key, now)
  local previous = tonumber(redis.call('HGET', key, 'generation') or '0')
  return math.max(previous + 1, math.floor(tonumber(now) * 1000000))
end

-- The deliverable commands of a worker, as a flat id, item, id, item list.
local function commands_key(member)
  return P .. 'cmd:' .. member
end
