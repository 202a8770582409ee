-- heartbeat.lua: a worker resets the idle time of the step entries it is running, but
-- only of those still its own: an entry another worker reclaimed (this one looked dead,
-- e.g. paused past the visibility timeout) stays with that worker.
--
-- KEYS: the step stream of each entry (all of one partition).
-- ARGV[1]: the workers' group; ARGV[2]: this worker's consumer name; ARGV[3..]: entry ids.
-- Returns the ids no longer this worker's (another worker's, or gone).
local lost = {}
for j = 1, #KEYS do
  local id = ARGV[j + 2]
  local p = redis.pcall('XPENDING', KEYS[j], ARGV[1], id, id, 1)
  if type(p) == 'table' and p[1] and p[1][2] == ARGV[2] then
    redis.call('XCLAIM', KEYS[j], ARGV[1], ARGV[2], 0, id, 'JUSTID')
  else
    lost[#lost + 1] = id
  end
end
return lost
