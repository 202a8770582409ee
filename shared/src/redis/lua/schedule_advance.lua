-- schedule_advance.lua: records the firings of a schedule's due slots and moves it to its
-- next slot, guarded by the partition lease and by the slot it fired from (a schedule
-- deleted, or resumed onto other slots, since it was read is left alone). The instances
-- were started before this call, each with its slot's id: if this call never happens (a
-- crash), the next lease holder fires the same slots again and the starts find their
-- instances (the caller-id rule), so each slot starts one instance.
--
-- KEYS[1]: the partition's lease; KEYS[2]: the schedule's hash; KEYS[3]: the schedules'
--          due sorted set; KEYS[4]: the schedule's firing log; KEYS[5]: the event stream;
--          KEYS[6]: the partition's stats hash (`schedule_fired`, `_missed`, `_skipped`).
-- ARGV[1]: the caller's id; ARGV[2]: the schedule's name; ARGV[3]: the `next` it fired
--          from; ARGV[4]: its next slot ("" none); ARGV[5]: the last instance started (""
--          none started); ARGV[6], [7], [8]: slots fired, missed, skipped; ARGV[9]: the
--          event stream's cap; ARGV[10]: n firings (JSON each) then m events (JSON each):
--          ARGV[11] = n, ARGV[12..11+n] firings, ARGV[12+n] = m, then the events.
-- Returns: 1 recorded, 0 the schedule changed meanwhile, or the error "LEASE".
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return redis.error_reply('LEASE')
end
local cur = redis.call('HMGET', KEYS[2], 'next', 'paused')
if not cur[1] or cur[1] ~= ARGV[3] then return 0 end
if ARGV[4] == '' then
  redis.call('HDEL', KEYS[2], 'next')
  redis.call('ZREM', KEYS[3], ARGV[2])
else
  redis.call('HSET', KEYS[2], 'next', ARGV[4])
  if cur[2] ~= '1' then redis.call('ZADD', KEYS[3], tonumber(ARGV[4]), ARGV[2]) end
end
if ARGV[5] ~= '' then redis.call('HSET', KEYS[2], 'last_instance', ARGV[5]) end
redis.call('HINCRBY', KEYS[2], 'fired', tonumber(ARGV[6]))
redis.call('HINCRBY', KEYS[2], 'missed', tonumber(ARGV[7]))
redis.call('HINCRBY', KEYS[2], 'skipped', tonumber(ARGV[8]))
redis.call('HINCRBY', KEYS[6], 'schedule_fired', tonumber(ARGV[6]))
redis.call('HINCRBY', KEYS[6], 'schedule_missed', tonumber(ARGV[7]))
redis.call('HINCRBY', KEYS[6], 'schedule_skipped', tonumber(ARGV[8]))
local n = tonumber(ARGV[10])
for i = 11, 10 + n do redis.call('LPUSH', KEYS[4], ARGV[i]) end
redis.call('LTRIM', KEYS[4], 0, 9)
local m = tonumber(ARGV[11 + n])
local cap = tonumber(ARGV[9])
for i = 12 + n, 11 + n + m do
  if cap > 0 then
    redis.call('XADD', KEYS[5], 'MAXLEN', '~', cap, '*', 'e', ARGV[i])
  else
    redis.call('XADD', KEYS[5], '*', 'e', ARGV[i])
  end
end
return 1
