-- subscribe.lua: a waiter joins a route, on the route's correlation partition (one slot).
-- It takes the oldest unexpired message kept for the route (handed on through the outbox)
-- or joins the waiters. Replayed, it joins again only a waiter that is not there (ZADD NX);
-- a waiter whose wait ended meanwhile refuses what it is handed, which comes back
-- (`return_message.lua`), so nothing is lost.
--
-- KEYS[1]: the route's waiters   KEYS[2]: the route's kept messages   KEYS[3]: kept bodies
-- KEYS[4]: kept expiry index   KEYS[5]: the partition's counters   KEYS[6]: the outbox
-- ARGV[1]: the waiter `TOKEN|STEP|INSTANCE`; ARGV[2]: when its wait began (ms);
-- ARGV[3]: the prefix of seen keys (the field is appended).
-- Returns: {'waiting'} | {'delivered', outbox entry id, body, sent ms, expires ms}.

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for _ = 1, 100 do
  local f = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
  if not f[1] then break end
  local field, sent = f[1], f[2]
  local expires = tonumber(redis.call('ZSCORE', KEYS[4], field) or 0)
  local body = redis.call('HGET', KEYS[3], field)
  redis.call('ZREM', KEYS[2], field)
  redis.call('ZREM', KEYS[4], field)
  redis.call('HDEL', KEYS[3], field)
  if body and expires > now then
    redis.call('SET', ARGV[3] .. field, 'd:' .. ARGV[1], 'XX', 'KEEPTTL')
    local id = redis.call('XADD', KEYS[6], '*', 'k', 'deliver', 'w', ARGV[1], 'm', body, 's', sent, 'x', expires)
    return { 'delivered', id, body, tostring(sent), tostring(expires) }
  end
  if body then
    redis.call('HINCRBY', KEYS[5], 'msg_expired', 1)
  end
end
redis.call('ZADD', KEYS[1], 'NX', ARGV[2], ARGV[1])
return { 'waiting' }
