-- schedule_admin.lua: create, pause, resume, delete a schedule, or record a manual
-- trigger, atomically on the schedule's keys (all in the partition of its name).
--
-- KEYS[1]: the schedule's hash; KEYS[2]: the schedules' due sorted set; KEYS[3]: the
--          schedules' name index; KEYS[4]: the schedule's firing log.
-- ARGV[1]: the operation; ARGV[2]: the name; then per operation:
--   create  ARGV[3] spec (JSON), ARGV[4] next slot ("" none) -> "created", or the stored
--           spec when the name exists (nothing changed)
--   pause   -> "ok"
--   resume  ARGV[3] next slot ("" none) -> "ok" (the slots missed while paused are not fired)
--   delete  -> "ok"
--   record  ARGV[3] the firing (JSON), ARGV[4] the instance started ("" none) -> "ok"
-- Every operation but create answers "not_found" for a name not stored.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local op, name = ARGV[1], ARGV[2]
if op == 'create' then
  local spec = redis.call('HGET', KEYS[1], 'spec')
  if spec then return spec end
  redis.call('HSET', KEYS[1], 'spec', ARGV[3], 'paused', '0', 'fired', 0, 'missed', 0,
    'skipped', 0, 'created', now)
  if ARGV[4] ~= '' then
    redis.call('HSET', KEYS[1], 'next', ARGV[4])
    redis.call('ZADD', KEYS[2], tonumber(ARGV[4]), name)
  end
  redis.call('ZADD', KEYS[3], now, name)
  return 'created'
end
if redis.call('EXISTS', KEYS[1]) == 0 then return 'not_found' end
if op == 'pause' then
  redis.call('HSET', KEYS[1], 'paused', '1')
  redis.call('ZREM', KEYS[2], name)
elseif op == 'resume' then
  redis.call('HSET', KEYS[1], 'paused', '0')
  if ARGV[3] == '' then
    redis.call('HDEL', KEYS[1], 'next')
    redis.call('ZREM', KEYS[2], name)
  else
    redis.call('HSET', KEYS[1], 'next', ARGV[3])
    redis.call('ZADD', KEYS[2], tonumber(ARGV[3]), name)
  end
elseif op == 'delete' then
  redis.call('DEL', KEYS[1], KEYS[4])
  redis.call('ZREM', KEYS[2], name)
  redis.call('ZREM', KEYS[3], name)
elseif op == 'record' then
  redis.call('LPUSH', KEYS[4], ARGV[3])
  redis.call('LTRIM', KEYS[4], 0, 9)
  if ARGV[4] ~= '' then
    redis.call('HSET', KEYS[1], 'last_instance', ARGV[4])
    redis.call('HINCRBY', KEYS[1], 'fired', 1)
  end
else
  return redis.error_reply('BADOP ' .. op)
end
return 'ok'
