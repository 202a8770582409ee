-- cancel_pending.lua: cancel an instance no coordinator has created yet, atomically: the
-- coordinator's commit that would create it expects no `rev` field, so once this wrote
-- one, that commit fails and the coordinator, reading again, drops the start.
--
-- KEYS[1]: the instance hash; KEYS[2]: `x:status:pending`; KEYS[3]: `x:status:canceled`;
-- KEYS[4]: `x:finished`.
-- ARGV[1]: the instance id; ARGV[2]: the reason ("" none).
-- Returns: "canceled" (done), or the instance's status when it is not pending (a
-- coordinator created it meanwhile: cancel it as any other), or "not_found".

local cur = redis.call('HMGET', KEYS[1], 'status', 'created')
if not cur[1] then return 'not_found' end
if cur[1] ~= 'pending' then return cur[1] end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', KEYS[1], 'status', 'canceled', 'rev', '0', 'finished', now, 'reason', ARGV[2])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZADD', KEYS[3], cur[2] or now, ARGV[1])
redis.call('ZADD', KEYS[4], now, ARGV[1])
return 'canceled'
