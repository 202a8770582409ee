-- due_timers.lua: the Redis clock and the timers due by it (DESIGN invariant 6).
--
-- KEYS[1]: the partition's timers sorted set.
-- ARGV[1]: at most this many due timers.
-- Returns: { now_ms, next_due_ms or -1, member1, due1, member2, due2, ... } where members
-- are due (score <= now), each followed by its score (so a commit removes it only if it
-- was not rescheduled meanwhile), and next_due_ms is the earliest timer not returned.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[1]))
local after = redis.call('ZRANGE', KEYS[1], #due / 2, #due / 2, 'WITHSCORES')
local next_due = -1
if after[2] then next_due = tonumber(after[2]) end
local out = { now, next_due }
for j = 1, #due, 2 do
  out[#out + 1] = due[j]
  out[#out + 1] = tonumber(due[j + 1])
end
return out
