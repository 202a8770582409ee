-- release_starts.lua: the lease holder moves due delayed starts to the command stream, so
-- the coordinator creates them as any start. Atomic per call: a start leaves the due set
-- in the same call that queues its command, so it is queued once; a start canceled while
-- pending (`cancel_pending.lua`) is only removed.
--
-- KEYS[1]: the partition's lease; KEYS[2]: the due-starts sorted set; KEYS[3]: the command
--          stream; KEYS[4..]: the instance hashes, one per id.
-- ARGV[1]: the caller's id (the lease holder); ARGV[2..]: the instance ids.
-- Returns: the number of starts queued, or the error "LEASE".
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return redis.error_reply('LEASE')
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local queued = 0
for i = 2, #ARGV do
  local id = ARGV[i]
  local due = redis.call('ZSCORE', KEYS[2], id)
  if due and tonumber(due) <= now then
    local cur = redis.call('HMGET', KEYS[i + 2], 'status', 'start', 'state')
    if cur[1] == 'pending' and cur[2] and not cur[3] then
      redis.call('XADD', KEYS[3], '*', 'm', cur[2])
      queued = queued + 1
    end
    redis.call('ZREM', KEYS[2], id)
  end
end
return queued
