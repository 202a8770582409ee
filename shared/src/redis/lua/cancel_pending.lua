-- cancel_pending.lua: cancel an instance no coordinator has created yet, atomically: the
-- coordinator's commit that would create it expects no `rev` field, so once this wrote
-- one, that commit fails and the coordinator, reading again, drops the start. It announces
-- the cancel as a created instance's cancel does: a `WorkflowCanceled` event on the
-- partition's event stream, stamped with the Redis clock.
--
-- The record joins the indexes of its origin (workflow, tenant, creator), which a pending
-- start is not in (`start.lua`). The caller names them as it read the record; should the
-- record say otherwise now (replaced by another start in between), nothing is written and
-- the answer is "changed": read again.
--
-- KEYS[1]: the instance hash; KEYS[2]: `x:status:pending`; KEYS[3]: `x:status:canceled`;
-- KEYS[4]: `x:finished`; KEYS[5]: the partition's event stream; KEYS[6]: the partition's
-- due-starts sorted set (a delayed start leaves it); KEYS[7]: `x:def:NAME`;
-- KEYS[8]: `x:tenant:T`; KEYS[9]: `x:creator:U` (both unused when ARGV[6] or ARGV[7] is "").
-- ARGV[1]: the instance id; ARGV[2]: the reason ("" none); ARGV[3]: the event's JSON up
-- to its timestamp (`{"instance_id":...,"timestamp":`); ARGV[4]: the rest of it after the
-- timestamp (`,"type":"WorkflowCanceled",...}`). The event stream is not trimmed here: the
-- coordinator's next event trims it to its `--events-cap`. ARGV[5]: the workflow;
-- ARGV[6]: the tenant ("" none); ARGV[7]: the creator ("" none), as the caller read them.
-- Returns: "canceled" (done), or the instance's status when it is not pending (a
-- coordinator created it meanwhile: cancel it as any other), "changed", or "not_found".

-- RFC 3339 with milliseconds, UTC, as the engine writes every event's timestamp
-- (civil-from-days, after H. Hinnant's algorithm).
local function rfc3339(ms)
  local secs = math.floor(ms / 1000)
  local days = math.floor(secs / 86400)
  local rem = secs - days * 86400
  local z = days + 719468
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524)
    - math.floor(doe / 146096)) / 365)
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local d = doy - math.floor((153 * mp + 2) / 5) + 1
  local m = mp < 10 and mp + 3 or mp - 9
  local y = yoe + era * 400
  if m <= 2 then y = y + 1 end
  return string.format('%04d-%02d-%02dT%02d:%02d:%02d.%03dZ', y, m, d,
    math.floor(rem / 3600), math.floor((rem % 3600) / 60), rem % 60, ms % 1000)
end

local cur = redis.call('HMGET', KEYS[1], 'status', 'created', 'def', 'tenant', 'creator')
if not cur[1] then return 'not_found' end
if cur[1] ~= 'pending' then return cur[1] end
if cur[3] ~= ARGV[5] or (cur[4] or '') ~= ARGV[6] or (cur[5] or '') ~= ARGV[7] then
  return 'changed'
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', KEYS[1], 'status', 'canceled', 'rev', '0', 'finished', now, 'reason', ARGV[2])
local created = cur[2] or now
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZADD', KEYS[3], created, ARGV[1])
redis.call('ZADD', KEYS[4], now, ARGV[1])
redis.call('ZADD', KEYS[7], created, ARGV[1])
if ARGV[6] ~= '' then redis.call('ZADD', KEYS[8], created, ARGV[1]) end
if ARGV[7] ~= '' then redis.call('ZADD', KEYS[9], created, ARGV[1]) end
redis.call('XADD', KEYS[5], '*', 'e', ARGV[3] .. '"' .. rfc3339(now) .. '"' .. ARGV[4])
redis.call('ZREM', KEYS[6], ARGV[1])
return 'canceled'
