-- report.lua: a worker reports step results: append each to the results stream and
-- acknowledge (and delete) its step message, atomically, so a result is never lost or
-- doubled by a crash between the two.
--
-- Only results whose step entry is still pending to this worker are taken. An entry
-- another worker reclaimed (this one looked dead: paused or stalled past the visibility
-- timeout) belongs to that worker, whose run reports; one already acknowledged, or gone
-- with its group (Redis lost its data), has nothing left to report. Such results are
-- skipped: the caller counts them. A result named twice in one call is appended once.
--
-- KEYS[1]: the partition's results stream; KEYS[2..]: the step stream of each result.
-- ARGV[1]: the workers' group; ARGV[2]: this worker's consumer name; then per result:
-- step message id, encoded result.
-- Returns the number of results appended.
local n = #KEYS - 1

-- An entry id `MS-SEQ` as two numbers (nil for anything else).
local function parse(id)
  local ms, seq = string.match(id, '^(%d+)%-(%d+)$')
  if ms then return tonumber(ms), tonumber(seq) end
end
local function before(a, b)
  local am, as = parse(a)
  local bm, bs = parse(b)
  return am < bm or (am == bm and as < bs)
end

-- The results per step stream, in first-seen order, and the range of their ids.
local streams = {}
local order = {}
for j = 1, n do
  local k = KEYS[j + 1]
  local s = streams[k]
  if not s then
    s = { mine = {}, acked = {} }
    streams[k] = s
    order[#order + 1] = k
  end
  local id = ARGV[2 * j + 1]
  if parse(id) then
    if not s.lo or before(id, s.lo) then s.lo = id end
    if not s.hi or before(s.hi, id) then s.hi = id end
  end
end
-- Which of them are pending to this worker: one XPENDING per stream over that range, for
-- this consumer only (what else it holds in the range comes back too, and is ignored).
for _, k in ipairs(order) do
  local s = streams[k]
  if s.lo then
    local p = redis.pcall('XPENDING', k, ARGV[1], s.lo, s.hi, 1000000, ARGV[2])
    if type(p) == 'table' and not p.err then
      for _, e in ipairs(p) do s.mine[e[1]] = true end
    end
  end
end
-- Appended in the order given; then one XACK and one XDEL per step stream.
local appended = 0
for j = 1, n do
  local s = streams[KEYS[j + 1]]
  local id = ARGV[2 * j + 1]
  if s.mine[id] then
    s.mine[id] = nil
    redis.call('XADD', KEYS[1], '*', 'm', ARGV[2 * j + 2])
    appended = appended + 1
    s.acked[#s.acked + 1] = id
  end
end
for _, k in ipairs(order) do
  local ids = streams[k].acked
  if #ids > 0 then
    redis.call('XACK', k, ARGV[1], unpack(ids))
    redis.call('XDEL', k, unpack(ids))
  end
end
return appended
