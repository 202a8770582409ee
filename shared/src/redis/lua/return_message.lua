-- return_message.lua: a message its waiter refused (it stopped waiting meanwhile) comes
-- back to its correlation partition (one slot): to the next waiter, else kept, unless it
-- expired (then dropped and counted). Only a message handed to that very waiter is taken
-- back (the seen key says where the message is), so a replayed return does nothing.
--
-- KEYS[1]: the seen key of (route, id)   KEYS[2]: the route's waiters
-- KEYS[3]: the route's kept messages   KEYS[4]: kept bodies   KEYS[5]: kept expiry index
-- KEYS[6]: the partition's counters   KEYS[7]: the outbox
-- ARGV[1]: the waiter that refused it; ARGV[2]: the field `ROUTE\nID`; ARGV[3]: the body;
-- ARGV[4]: when it was sent (ms); ARGV[5]: when it expires (ms).
-- Returns: {'ignored'} | {'expired'} | {'kept'} | {'delivered', outbox entry id, waiter}.

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local seen = redis.call('GET', KEYS[1])
if not seen and tonumber(ARGV[5]) <= now then
  -- Its time to live ran out on the way (the seen key went with it): dropped.
  redis.call('HINCRBY', KEYS[6], 'msg_expired', 1)
  return { 'expired' }
end
if seen ~= 'd:' .. ARGV[1] then
  return { 'ignored' }
end
redis.call('ZREM', KEYS[2], ARGV[1])
if tonumber(ARGV[5]) <= now then
  redis.call('SET', KEYS[1], 'x', 'KEEPTTL')
  redis.call('HINCRBY', KEYS[6], 'msg_expired', 1)
  return { 'expired' }
end
local w = redis.call('ZRANGE', KEYS[2], 0, 0)
if w[1] then
  redis.call('ZREM', KEYS[2], w[1])
  redis.call('SET', KEYS[1], 'd:' .. w[1], 'KEEPTTL')
  local id = redis.call('XADD', KEYS[7], '*', 'k', 'deliver', 'w', w[1], 'm', ARGV[3], 's', ARGV[4], 'x', ARGV[5])
  return { 'delivered', id, w[1] }
end
redis.call('SET', KEYS[1], 'k', 'KEEPTTL')
redis.call('HSET', KEYS[4], ARGV[2], ARGV[3])
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[2])
redis.call('ZADD', KEYS[5], ARGV[5], ARGV[2])
return { 'kept' }
