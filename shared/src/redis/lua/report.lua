-- report.lua: a worker reports step results: append each to the results stream and
-- acknowledge (and delete) its step message, atomically, so a result is never lost or
-- doubled by a crash between the two.
--
-- KEYS[1]: the partition's results stream; KEYS[2..]: the step stream of each result.
-- ARGV[1]: the workers' group; then per result: step message id, encoded result.
-- Returns the number of results appended.
local n = #KEYS - 1
for j = 1, n do
  redis.call('XADD', KEYS[1], '*', 'm', ARGV[2 * j + 1])
end
-- One XACK and one XDEL per step stream, with all of its ids.
local by_stream = {}
local order = {}
for j = 1, n do
  local k = KEYS[j + 1]
  local ids = by_stream[k]
  if not ids then
    ids = {}
    by_stream[k] = ids
    order[#order + 1] = k
  end
  ids[#ids + 1] = ARGV[2 * j]
end
for _, k in ipairs(order) do
  local ids = by_stream[k]
  redis.call('XACK', k, ARGV[1], unpack(ids))
  redis.call('XDEL', k, unpack(ids))
end
return n
