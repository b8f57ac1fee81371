-- ARGV: prefix, member, record_ms, now, mode, then for 'add' camera and epoch, for 'drop'
-- camera, for 'set' camera/epoch pairs (the whole map). Returns the generation, changed only
-- when the lease map did, or false when the worker has no record.
local member, key = ARGV[2], P .. 'w:' .. ARGV[2]
if redis.call('EXISTS', key) == 0 then return false end
local mode = ARGV[5]
local changed = false
if mode == 'add' then
  local field = 'lease:' .. ARGV[6]
  if redis.call('HGET', key, field) ~= ARGV[7] then
    redis.call('HSET', key, field, ARGV[7])
    changed = true
  end
elseif mode == 'drop' then
  changed = redis.call('HDEL', key, 'lease:' .. ARGV[6]) == 1
else
  local wanted = {}
  for i = 6, #ARGV, 2 do wanted['lease:' .. ARGV[i]] = ARGV[i + 1] end
  for _, name in ipairs(redis.call('HKEYS', key)) do
    if string.sub(name, 1, 6) == 'lease:' and wanted[name] == nil then
      redis.call('HDEL', key, name)
      changed = true
    end
  end
  for name, epoch in pairs(wanted) do
    if redis.call('HGET', key, name) ~= epoch then
      redis.call('HSET', key, name, epoch)
      changed = true
    end
  end
end
if changed then
  redis.call('HSET', key, 'generation', string.format('%.0f', next_generation(key, ARGV[4])))
end
reindex(member, ARGV[3])
return redis.call('HGET', key, 'generation')
