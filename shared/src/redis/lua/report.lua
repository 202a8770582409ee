-- report.lua: a worker reports step results: append each to the results stream and
-- acknowledge (and delete) its step message, atomically, so a result is never lost or
-- doubled by a crash between the two.
--
-- Only results whose step entry is still pending to this worker are taken. An entry
-- another worker reclaimed (this one looked dead: paused or stalled past the visibility
-- timeout) belongs to that worker, whose run reports; one already acknowledged, or gone
-- with its group (Redis lost its data), has nothing left to report. Such results are
-- skipped: the caller counts them.
--
-- KEYS[1]: the partition's results stream; KEYS[2..]: the step stream of each result.
-- ARGV[1]: the workers' group; ARGV[2]: this worker's consumer name; then per result:
-- step message id, encoded result.
-- Returns the number of results appended.
local n = #KEYS - 1
local appended = 0
-- One XACK and one XDEL per step stream, with all of its ids.
local by_stream = {}
local order = {}
for j = 1, n do
  local k = KEYS[j + 1]
  local id = ARGV[2 * j + 1]
  local p = redis.pcall('XPENDING', k, ARGV[1], id, id, 1)
  if type(p) == 'table' and p[1] and p[1][2] == ARGV[2] then
    redis.call('XADD', KEYS[1], '*', 'm', ARGV[2 * j + 2])
    appended = appended + 1
    local ids = by_stream[k]
    if not ids then
      ids = {}
      by_stream[k] = ids
      order[#order + 1] = k
    end
    ids[#ids + 1] = id
  end
end
for _, k in ipairs(order) do
  local ids = by_stream[k]
  redis.call('XACK', k, ARGV[1], unpack(ids))
  redis.call('XDEL', k, unpack(ids))
end
return appended
