-- dead_letter.lua: move a message that cannot be handled to the dead-letter stream,
-- with its error, and take it off its stream: it never blocks other work.
--
-- KEYS[1]: the source stream; KEYS[2]: the partition's dead-letter stream;
-- KEYS[3]: the partition's stats hash.
-- ARGV[1]: the source's group; ARGV[2]: message id; ARGV[3]: the raw message (may be
-- empty); ARGV[4]: error text; ARGV[5]: deliveries so far; ARGV[6]: dead-letter cap.
redis.call('XADD', KEYS[2], 'MAXLEN', '~', tonumber(ARGV[6]), '*',
  'source', KEYS[1], 'group', ARGV[1], 'id', ARGV[2], 'm', ARGV[3],
  'error', ARGV[4], 'deliveries', ARGV[5])
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
redis.call('HINCRBY', KEYS[3], 'dead_lettered', 1)
return 1
