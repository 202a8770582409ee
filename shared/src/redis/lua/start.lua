-- start.lua: store starts of one partition as pending instances, each with its Start
-- command on the partition's command stream, and decide the caller-id rule atomically.
-- A start is durable once this returns: no coordinator needs to run (it creates the
-- instance from the command later).
--
-- A delayed start (a start time later than now by the Redis clock) is stored the same way,
-- with its time in the hash's `start_at` field, but its Start command waits in the
-- partition's due-starts sorted set (member the instance id, score the time) instead of
-- the stream; the lease holder moves it to the stream when due (`release_starts.lua`).
--
-- KEYS[1]: the command stream; KEYS[2]: `x:all`; KEYS[3]: `x:status:pending`;
--          KEYS[4]: the due-starts sorted set; then 4 keys per start: the instance hash,
--          `x:def:NAME`, `x:tenant:T`, `x:creator:U` (the last two are the instance hash
--          again when the start has no tenant or creator).
-- ARGV[1]: n, the number of starts; then 9 per start: id, definition, version,
--          version asked ("1" when the caller named the version: an instance of another
--          version is then another start), tenant ("" none), creator ("" none), message
--          (the wire-encoded Start command, kept in the hash's `start` field too, for views),
--          start time (ms, "0" none), start delay (ms from the Redis clock now, "0" none).
-- Returns: { now_ms, r1, ..., rn } with r = 0 (stored, pending), 1 (the id exists for the
-- same workflow, version asked and tenant: nothing stored) or 2 (the id is taken by
-- another start: nothing stored).

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local n = tonumber(ARGV[1])
local out = { now }
for s = 0, n - 1 do
  local a = 2 + s * 9
  local k = 5 + s * 4
  local key = KEYS[k]
  local id, def, ver, tenant, creator, msg =
    ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 4], ARGV[a + 5], ARGV[a + 6]
  local cur = redis.call('HMGET', key, 'def', 'ver', 'tenant')
  if cur[1] then
    if cur[1] == def and (ARGV[a + 3] == '0' or cur[2] == ver) and (cur[3] or '') == tenant then
      out[s + 2] = 1
    else
      out[s + 2] = 2
    end
  else
    redis.call('HSET', key, 'status', 'pending', 'def', def, 'ver', ver, 'created', now,
      'start', msg)
    redis.call('ZADD', KEYS[2], now, id)
    redis.call('ZADD', KEYS[3], now, id)
    redis.call('ZADD', KEYS[k + 1], now, id)
    if tenant ~= '' then
      redis.call('HSET', key, 'tenant', tenant)
      redis.call('ZADD', KEYS[k + 2], now, id)
    end
    if creator ~= '' then
      redis.call('HSET', key, 'creator', creator)
      redis.call('ZADD', KEYS[k + 3], now, id)
    end
    local due = tonumber(ARGV[a + 7])
    if due == 0 and tonumber(ARGV[a + 8]) > 0 then due = now + tonumber(ARGV[a + 8]) end
    if due > now then
      redis.call('HSET', key, 'start_at', due)
      redis.call('ZADD', KEYS[4], due, id)
    else
      redis.call('XADD', KEYS[1], '*', 'm', msg)
    end
    out[s + 2] = 0
  end
end
return out
