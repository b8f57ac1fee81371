-- ARGV: prefix. The ids of commands handed out since the last call.
local ids = redis.call('SMEMBERS', P .. 'delivered')
redis.call('DEL', P .. 'delivered')
return ids
