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
-- of the due-starts set), and a member of each index; the index members of a call go in
-- one ZADD per index key, the caller-id check is one EXISTS over the call's instance keys
-- (a HMGET per start only when one of them exists), and the clock is read and turned into
-- text once.
--
-- KEYS[1]: the command stream; KEYS[2]: `x:all`; KEYS[3]: `x:status:pending`;
--          KEYS[4]: the due-starts sorted set; KEYS[5 .. 4+n]: the instance hash of each
--          start, in order; then the index keys the shapes name (`x:def:NAME`,
--          `x:tenant:T`, `x:creator:U`), each once.
-- ARGV[1]: n, the number of starts; ARGV[2]: m, the number of shapes; then 10 per shape:
--          definition, version, version asked ("1" when the caller named the version: an
--          instance of another version is then another start), the KEYS index of its
--          `x:def` key, tenant ("" none), the KEYS index of its `x:tenant` key (0 none),
--          creator ("" none), the KEYS index of its `x:creator` key (0 none), start time
--          (ms, "0" none), start delay (ms from the Redis clock now, "0" none);
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

-- Index members to add, per KEYS index, as score/member pairs, and their counts.
local members, counts, order = {}, {}, {}
local function index_of(k)
  if not members[k] then
    members[k] = {}
    counts[k] = 0
    order[#order + 1] = k
  end
  return k
end

local shapes = {}
for d = 1, m do
  local a = 3 + (d - 1) * 10
  local def, ver, tenant, creator = ARGV[a], ARGV[a + 1], ARGV[a + 4], ARGV[a + 6]
  -- The pending record's fields; [10] is the start's message, set per start.
  local h = { 'status', 'pending', 'def', def, 'ver', ver, 'created', now, 'start', '' }
  local idx = { index_of(tonumber(ARGV[a + 3])) }
  if tenant ~= '' then
    h[#h + 1] = 'tenant'
    h[#h + 1] = tenant
    idx[#idx + 1] = index_of(tonumber(ARGV[a + 5]))
  end
  if creator ~= '' then
    h[#h + 1] = 'creator'
    h[#h + 1] = creator
    idx[#idx + 1] = index_of(tonumber(ARGV[a + 7]))
  end
  local due = tonumber(ARGV[a + 8])
  local delay = tonumber(ARGV[a + 9])
  if due == 0 and delay > 0 then due = now_ms + delay end
  if due > now_ms then
    due = string.format('%d', due)
    h[#h + 1] = 'start_at'
    h[#h + 1] = due
  else
    due = nil
  end
  shapes[d] = {
    def = def, ver = ver, asked = ARGV[a + 2] == '1', tenant = tenant,
    h = h, idx = idx, due = due,
  }
end

local out = { now_ms }
-- The caller-id rule: in the usual call none of the ids exists, and one EXISTS says so.
local existing = n > 0 and redis.call('EXISTS', unpack(KEYS, 5, 4 + n)) or 0
local stored = {}
local all, nall = {}, 0
local dues, ndues = {}, 0
local p = 3 + m * 10
for s = 1, n do
  local a = p + (s - 1) * 3
  local key = KEYS[4 + s]
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
    all[nall + 1] = now
    all[nall + 2] = id
    nall = nall + 2
    for i = 1, #shape.idx do
      local k = shape.idx[i]
      local c = counts[k]
      local list = members[k]
      list[c + 1] = now
      list[c + 2] = id
      counts[k] = c + 2
    end
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
if nall > 0 then
  redis.call('ZADD', KEYS[2], unpack(all))
  redis.call('ZADD', KEYS[3], unpack(all))
end
if ndues > 0 then
  redis.call('ZADD', KEYS[4], unpack(dues))
end
for _, k in ipairs(order) do
  if counts[k] > 0 then
    redis.call('ZADD', KEYS[k], unpack(members[k]))
  end
end
return out
