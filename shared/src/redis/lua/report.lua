-- report.lua: a worker reports step results: append each to the results stream and
-- acknowledge (and delete) its step message, atomically, so a result is never lost or
-- doubled by a crash between the two.
--
-- KEYS[1]: the partition's results stream; KEYS[2..]: the step stream of each result.
-- ARGV[1]: the workers' group; then per result: step message id, encoded result.
-- Returns the number of results appended.
local n = 0
for j = 2, #KEYS do
  local id = ARGV[2 * (j - 1)]
  local msg = ARGV[2 * (j - 1) + 1]
  redis.call('XADD', KEYS[1], '*', 'm', msg)
  redis.call('XACK', KEYS[j], ARGV[1], id)
  redis.call('XDEL', KEYS[j], id)
  n = n + 1
end
return n
