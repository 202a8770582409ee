-- send_message.lua: send a correlated message, on its correlation partition (one slot).
-- Idempotent by message id within its time to live; then hands it to the oldest waiter of
-- its route (through the partition's outbox, relayed to the waiter's partition) or keeps it.
--
-- KEYS[1]: the seen key of (route, id)   KEYS[2]: the route's waiters (zset)
-- KEYS[3]: the route's kept messages (zset)   KEYS[4]: the kept bodies (hash)
-- KEYS[5]: the kept expiry index (zset)   KEYS[6]: the partition's counters (hash)
-- KEYS[7]: the partition's outbox (stream)
-- ARGV[1]: the field `ROUTE\nID`; ARGV[2]: the time to live (ms); ARGV[3]: the body.
-- Returns: {'dup', now} | {'kept', now} | {'delivered', now, waiter, outbox entry id}.

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
local expires = now + ttl
-- The oldest waiter, read first (a read changes nothing) so that the seen key is written
-- once, with its final value: 'd:WAITER' when delivered, 'k' when kept.
local w = redis.call('ZRANGE', KEYS[2], 0, 0)
if not redis.call('SET', KEYS[1], w[1] and ('d:' .. w[1]) or 'k', 'NX', 'PX', ttl) then
  redis.call('HINCRBY', KEYS[6], 'msg_duplicates', 1)
  return { 'dup', now }
end
if w[1] then
  redis.call('ZREM', KEYS[2], w[1])
  local id = redis.call('XADD', KEYS[7], '*', 'k', 'deliver', 'w', w[1], 'm', ARGV[3], 's', now, 'x', expires)
  return { 'delivered', now, w[1], id }
end
redis.call('HSET', KEYS[4], ARGV[1], ARGV[3])
redis.call('ZADD', KEYS[3], now, ARGV[1])
redis.call('ZADD', KEYS[5], expires, ARGV[1])
redis.call('HINCRBY', KEYS[6], 'msg_kept', 1)
return { 'kept', now }
