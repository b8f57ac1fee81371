-- ARGV: prefix, member, record_ms, mode, then for 'add' the id and item, for 'remove' the
-- id, for 'set' id/item pairs (every deliverable command). 1, or 0 without a record.
local member, key = ARGV[2], P .. 'w:' .. ARGV[2]
if redis.call('EXISTS', key) == 0 then return 0 end
local cmds = commands_key(member)
local mode = ARGV[4]
if mode == 'add' then
  redis.call('HSET', cmds, ARGV[5], ARGV[6])
elseif mode == 'remove' then
  redis.call('HDEL', cmds, ARGV[5])
else
  redis.call('DEL', cmds)
  if #ARGV >= 5 then redis.call('HSET', cmds, unpack(ARGV, 5)) end
end
redis.call('PEXPIRE', cmds, ARGV[3])
return 1
