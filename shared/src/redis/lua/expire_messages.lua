-- expire_messages.lua: drop the kept messages of a correlation partition whose time to
-- live ran out, and count them (`msg_expired`); at most ARGV[2] per call.
--
-- KEYS[1]: the kept expiry index   KEYS[2]: kept bodies   KEYS[3]: the partition's counters
-- ARGV[1]: the prefix of the routes' kept sets (the route is appended); ARGV[2]: the limit.
-- Returns: the number dropped.

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))
local dropped = 0
for _, field in ipairs(due) do
  local route = string.match(field, '^(.*)\n[^\n]*$')
  if route then
    redis.call('ZREM', ARGV[1] .. route, field)
  end
  redis.call('ZREM', KEYS[1], field)
  if redis.call('HDEL', KEYS[2], field) == 1 then
    dropped = dropped + 1
  end
end
if dropped > 0 then
  redis.call('HINCRBY', KEYS[3], 'msg_expired', dropped)
end
return dropped
