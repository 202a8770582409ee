-- dlq_replay.lua: put a dead letter back on the stream it came from, and take it off the
-- dead-letter stream, in one step (a replayed message is never lost nor doubled).
--
-- KEYS[1]: the partition's dead-letter stream; KEYS[2]: the entry's source stream (same
-- partition, so the same slot).
-- ARGV[1]: the dead-letter entry id.
-- Returns the new entry id on the source stream; 0 if the entry is gone (already replayed
-- or purged); the error "SOURCE" if the entry's source is not KEYS[2].
local entries = redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1])
if #entries == 0 then
  return 0
end
local fields = entries[1][2]
local source, m = nil, nil
for i = 1, #fields, 2 do
  if fields[i] == 'source' then
    source = fields[i + 1]
  elseif fields[i] == 'm' then
    m = fields[i + 1]
  end
end
if source ~= KEYS[2] then
  return redis.error_reply('SOURCE')
end
local id = redis.call('XADD', KEYS[2], '*', 'm', m or '')
redis.call('XDEL', KEYS[1], ARGV[1])
return id
