-- due_work.lua: the Redis clock, and what of a partition's delayed starts and schedules is
-- due by it (read only; the lease holder then acts on each with its own script).
--
-- KEYS[1]: the due-starts sorted set; KEYS[2]: the schedules' due sorted set.
-- ARGV[1]: at most this many of each.
-- Returns: { now_ms, next_ms or -1, n_starts, id1, ..., n_schedules, name1, due1, ... }
-- where next_ms is the earliest time in either set that is not returned.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local limit = tonumber(ARGV[1])
local starts = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, limit)
local scheds = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'WITHSCORES', 'LIMIT', 0, limit)
local next_ms = -1
for _, pair in ipairs({ { KEYS[1], #starts }, { KEYS[2], #scheds / 2 } }) do
  local after = redis.call('ZRANGE', pair[1], pair[2], pair[2], 'WITHSCORES')
  if after[2] then
    local s = tonumber(after[2])
    if next_ms < 0 or s < next_ms then next_ms = s end
  end
end
local out = { now, next_ms, #starts }
for _, id in ipairs(starts) do out[#out + 1] = id end
out[#out + 1] = #scheds / 2
for j = 1, #scheds, 2 do
  out[#out + 1] = scheds[j]
  out[#out + 1] = tonumber(scheds[j + 1])
end
return out
