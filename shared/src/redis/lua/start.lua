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
-- What starts of one call share (workflow, version, tenant, creator, start time) is sent
-- once, as a *shape*; a start is its id, its shape and its message. The cost per start is
-- kept to what a start must write: one HSET (the pending record), one XADD (or a member
-- of the due-starts set), and a member of the pending index, all members in one ZADD; the
-- caller-id check is one EXISTS over the call's instance keys (a HMGET per start only when
-- one of them exists), and the clock is read and turned into text once. A pending start
-- is in no other index: the workflow, tenant and creator indexes take it when it leaves
-- `pending` (created, canceled or failed), and listings by those read the pending index
-- too; there is no index of all instances, a listing without a filter merges the status
-- indexes (`listing.rs`). Each index member a start wrote cost about as much as its HSET.
--
-- KEYS[1]: the command stream; KEYS[2]: `x:status:pending`; KEYS[3]: the due-starts
--          sorted set; KEYS[4 .. 3+n]: the instance hash of each start, in order.
-- ARGV[1]: n, the number of starts; ARGV[2]: m, the number of shapes; then 7 per shape:
--          definition, version, version asked ("1" when the caller named the version: an
--          instance of another version is then another start), tenant ("" none), creator
--          ("" none), start time (ms, "0" none), start delay (ms from the Redis clock now,
--          "0" none);
--          then 3 per start: id, shape (1 .. m), message (the wire-encoded Start command,
--          kept in the hash's `start` field too, for views).
-- Returns: { now_ms, r1, ..., rn } with r = 0 (stored, pending), 1 (the id exists for the
-- same workflow, version asked and tenant: nothing stored) or 2 (the id is taken by
-- another start: nothing stored). A start whose id an earlier start of the same call
-- stored is decided against that one, as if it came in a later call.

local t = redis.call('TIME')
local ms = math.floor(tonumber(t[2]) / 1000)
local now_ms = tonumber(t[1]) * 1000 + ms
-- The clock as text once: a Lua number passed to redis.call is formatted on every use.
local now = t[1] .. string.format('%03d', ms)
local n = tonumber(ARGV[1])
local m = tonumber(ARGV[2])

local shapes = {}
for d = 1, m do
  local a = 3 + (d - 1) * 7
  local def, ver, tenant, creator = ARGV[a], ARGV[a + 1], ARGV[a + 3], ARGV[a + 4]
  -- The pending record's fields; [10] is the start's message, set per start.
  local h = { 'status', 'pending', 'def', def, 'ver', ver, 'created', now, 'start', '' }
  if tenant ~= '' then
    h[#h + 1] = 'tenant'
    h[#h + 1] = tenant
  end
  if creator ~= '' then
    h[#h + 1] = 'creator'
    h[#h + 1] = creator
  end
  local due = tonumber(ARGV[a + 5])
  local delay = tonumber(ARGV[a + 6])
  if due == 0 and delay > 0 then due = now_ms + delay end
  if due > now_ms then
    due = string.format('%d', due)
    h[#h + 1] = 'start_at'
    h[#h + 1] = due
  else
    due = nil
  end
  shapes[d] = {
    def = def, ver = ver, asked = ARGV[a + 2] == '1', tenant = tenant, h = h, due = due,
  }
end

local out = { now_ms }
-- The caller-id rule: in the usual call none of the ids exists, and one EXISTS says so.
local existing = n > 0 and redis.call('EXISTS', unpack(KEYS, 4, 3 + n)) or 0
local stored = {}
local pending, npending = {}, 0
local dues, ndues = {}, 0
local p = 3 + m * 7
for s = 1, n do
  local a = p + (s - 1) * 3
  local key = KEYS[3 + s]
  local id, shape, msg = ARGV[a], shapes[tonumber(ARGV[a + 1])], ARGV[a + 2]
  local def, ver, tenant
  local earlier = stored[key]
  if earlier then
    def, ver, tenant = earlier.def, earlier.ver, earlier.tenant
  elseif existing > 0 then
    local cur = redis.call('HMGET', key, 'def', 'ver', 'tenant')
    def, ver, tenant = cur[1], cur[2], cur[3] or ''
  end
  if def then
    if def == shape.def and (not shape.asked or ver == shape.ver) and tenant == shape.tenant then
      out[s + 1] = 1
    else
      out[s + 1] = 2
    end
  else
    local h = shape.h
    h[10] = msg
    redis.call('HSET', key, unpack(h))
    pending[npending + 1] = now
    pending[npending + 2] = id
    npending = npending + 2
    if shape.due then
      dues[ndues + 1] = shape.due
      dues[ndues + 2] = id
      ndues = ndues + 2
    else
      redis.call('XADD', KEYS[1], '*', 'm', msg)
    end
    stored[key] = shape
    out[s + 1] = 0
  end
end
if npending > 0 then
  redis.call('ZADD', KEYS[2], unpack(pending))
end
if ndues > 0 then
  redis.call('ZADD', KEYS[3], unpack(dues))
end
return out
