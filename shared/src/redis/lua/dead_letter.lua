-- dead_letter.lua: move a message that cannot be handled to the dead-letter stream,
-- with its error, and take it off its stream: it never blocks other work. For a step
-- message whose attempt is known, also append that attempt's failure to the results
-- stream, in the same call, so the step fails (its failure edges run) instead of hanging.
--
-- The dead-letter stream is capped (MAXLEN ~ cap): when the cap drops old letters, their
-- number is added to the stats hash's `dlq_trimmed` field and returned, so a burst that
-- overflows it is counted and reported, never silent.
--
-- KEYS[1]: the source stream; KEYS[2]: the partition's dead-letter stream;
-- KEYS[3]: the partition's stats hash; KEYS[4] (optional): the partition's results stream.
-- ARGV[1]: the source's group; ARGV[2]: message id; ARGV[3]: the raw message (may be
-- empty); ARGV[4]: error text; ARGV[5]: deliveries so far; ARGV[6]: dead-letter cap;
-- ARGV[7] (with KEYS[4]): the encoded failure result.
-- Returns the number of older dead letters the cap dropped (usually 0).
local before = redis.call('XLEN', KEYS[2])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', tonumber(ARGV[6]), '*',
  'source', KEYS[1], 'group', ARGV[1], 'id', ARGV[2], 'm', ARGV[3],
  'error', ARGV[4], 'deliveries', ARGV[5])
local trimmed = before + 1 - redis.call('XLEN', KEYS[2])
if trimmed > 0 then
  redis.call('HINCRBY', KEYS[3], 'dlq_trimmed', trimmed)
else
  trimmed = 0
end
if KEYS[4] then
  redis.call('XADD', KEYS[4], '*', 'm', ARGV[7])
end
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
redis.call('HINCRBY', KEYS[3], 'dead_lettered', 1)
return trimmed
