-- commit.lua: apply one batch of transitions of one partition, all or nothing.
--
-- KEYS: every key the batch touches (all in one partition slot). KEYS[1] is the lease.
-- ARGV[1]: the coordinator id that must hold the lease.
-- ARGV[2]: T, the key index of the partition's timers sorted set to read the due timers of
--          after the writes (0: do not read them); ARGV[3]: at most this many due timers.
-- ARGV[4]: C, the number of revision checks; then C pairs (key index, expected revision),
--          expected "" meaning the key must not exist (a new instance); key index 0
--          instead checks a deadline: the Redis clock must not be past it (ms).
-- Then the writes, each an opcode and its arguments (key arguments are indexes into KEYS):
--   HSET k n f1 v1 ... fn vn   | HDEL k f       | RPUSH k v       | DEL k
--   RPUSHCAP k cap h f v       (RPUSH, then keep the last `cap` entries of the list and add
--                               how many it dropped to field f of hash h: a capped history)
--   XADD k maxlen n f1 v1 ... fn vn   (maxlen 0: uncapped; else MAXLEN ~ maxlen)
--   ZADD k n s1 m1 ... sn mn   | ZREM k n m1 ... mn         | SADD k m
--   ZREMIF k score m           (ZREM only if m's score is still `score`: a due timer that
--                               an earlier transition of the batch rescheduled is kept)
--   ACK k group n id1 ... idn  (XACK then XDEL of the n entries: handled input leaves the stream)
--   REPLY k ttl_ms v           (LPUSH then PEXPIRE)
--   HINCR k f n
-- Returns: with T = 0, the number of writes applied; otherwise
-- { applied, now_ms, next_due_ms or -1, member1, due1, ... }: the Redis clock after the writes and
-- the timers due by it (as `due_timers.lua` answers), so the next turn of the coordinator needs
-- no call of its own for them. Or an error "LEASE" (lease lost: stop), "REV <key>" (state
-- changed under us: reload and retry), "DEADLINE" (a command is past its deadline: read
-- again, which discards it), "BADOP <detail>" (a malformed batch) or "BADKEY <key> ..." (a
-- key of another type than its op needs). Everything is checked before anything is written
-- (lease, revisions, deadlines, the shape of every op, the type of every key), because a
-- script does not roll back: an error half-way would leave inputs acknowledged and their
-- writes missing.

if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return redis.error_reply('LEASE')
end
local checks = tonumber(ARGV[4])
local i = 5
-- The type of each key read so far ('none' when it does not exist), read once per key.
local types = {}
for _ = 1, checks do
  if ARGV[i] == '0' then
    -- Key index 0: the earliest deadline of the batch's commands (ms, Redis clock). Past
    -- it nothing is written: the coordinator reads again and discards those commands.
    local t = redis.call('TIME')
    if tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) > tonumber(ARGV[i + 1]) then
      return redis.error_reply('DEADLINE')
    end
  else
    local key = KEYS[tonumber(ARGV[i])]
    local expected = ARGV[i + 1]
    local rev = redis.call('HGET', key, 'rev')
    if expected == '' then
      if rev then return redis.error_reply('REV ' .. key) end
    elseif rev ~= expected then
      return redis.error_reply('REV ' .. key)
    else
      -- It has a field: a hash (HGET refuses any other type), so no TYPE call for it.
      types[key] = 'hash'
    end
  end
  i = i + 2
end

local n = #ARGV
local first_op = i

-- Validate every op (its name, its argument count, the type of its key) before the first
-- write.
local fixed = { RPUSH = 3, RPUSHCAP = 6, ZREMIF = 4, SADD = 3, HDEL = 3, DEL = 2, REPLY = 4, HINCR = 4 }
local want = {
  HSET = 'hash', HDEL = 'hash', HINCR = 'hash', RPUSH = 'list', RPUSHCAP = 'list', REPLY = 'list',
  XADD = 'stream', ACK = 'stream', ZADD = 'zset', ZREM = 'zset', ZREMIF = 'zset', SADD = 'set',
}
-- The error text when `key` holds another type than `w`, else nil. No table per op: this
-- runs for every op of every commit.
local function mistyped(key, w)
  local t = types[key]
  if not t then
    t = redis.call('TYPE', key)['ok']
    types[key] = t
  end
  if t ~= 'none' and t ~= w then
    return 'BADKEY ' .. key .. ' holds a ' .. t .. ', not a ' .. w
  end
end
while i <= n do
  local op = ARGV[i]
  local k = KEYS[tonumber(ARGV[i + 1]) or 0]
  if not k then return redis.error_reply('BADOP key of op ' .. tostring(op)) end
  local len = fixed[op]
  if op == 'XADD' then
    len = 4 + 2 * (tonumber(ARGV[i + 3]) or -1)
  elseif op == 'HSET' then
    len = 3 + 2 * (tonumber(ARGV[i + 2]) or -1)
  elseif op == 'ACK' then
    len = 4 + (tonumber(ARGV[i + 3]) or -1)
  elseif op == 'ZADD' then
    len = 3 + 2 * (tonumber(ARGV[i + 2]) or -1)
  elseif op == 'ZREM' then
    len = 3 + (tonumber(ARGV[i + 2]) or -1)
  end
  if not len or len < 2 or i + len - 1 > n or ((op == 'ZADD' or op == 'ZREM') and len <= 3) then
    return redis.error_reply('BADOP ' .. tostring(op))
  end
  local w = want[op]
  local bad = w and mistyped(k, w)
  if bad then return redis.error_reply(bad) end
  if op == 'RPUSHCAP' then
    local h = KEYS[tonumber(ARGV[i + 3]) or 0]
    if not h then return redis.error_reply('BADOP counter key of RPUSHCAP') end
    bad = mistyped(h, 'hash')
    if bad then return redis.error_reply(bad) end
  end
  i = i + len
end

i = first_op
local applied = 0
while i <= n do
  local op = ARGV[i]
  local k = KEYS[tonumber(ARGV[i + 1])]
  if op == 'XADD' then
    -- No table per entry: the field pairs are passed straight from ARGV.
    local cap = ARGV[i + 2]
    local last = i + 3 + 2 * tonumber(ARGV[i + 3])
    if cap == '0' then
      redis.call('XADD', k, '*', unpack(ARGV, i + 4, last))
    else
      redis.call('XADD', k, 'MAXLEN', '~', cap, '*', unpack(ARGV, i + 4, last))
    end
    i = last + 1
  elseif op == 'HSET' then
    local pairs_n = tonumber(ARGV[i + 2])
    redis.call('HSET', k, unpack(ARGV, i + 3, i + 2 + 2 * pairs_n))
    i = i + 3 + 2 * pairs_n
  elseif op == 'RPUSH' then
    redis.call('RPUSH', k, ARGV[i + 2]); i = i + 3
  elseif op == 'RPUSHCAP' then
    local len = redis.call('RPUSH', k, ARGV[i + 5])
    local cap = tonumber(ARGV[i + 2])
    if cap and cap > 0 and len > cap then
      redis.call('LTRIM', k, len - cap, -1)
      redis.call('HINCRBY', KEYS[tonumber(ARGV[i + 3])], ARGV[i + 4], len - cap)
    end
    i = i + 6
  elseif op == 'ACK' then
    local ids_n = tonumber(ARGV[i + 3])
    redis.call('XACK', k, ARGV[i + 2], unpack(ARGV, i + 4, i + 3 + ids_n))
    redis.call('XDEL', k, unpack(ARGV, i + 4, i + 3 + ids_n))
    i = i + 4 + ids_n
  elseif op == 'ZADD' then
    local last = i + 2 + 2 * tonumber(ARGV[i + 2])
    redis.call('ZADD', k, unpack(ARGV, i + 3, last)); i = last + 1
  elseif op == 'ZREM' then
    local last = i + 2 + tonumber(ARGV[i + 2])
    redis.call('ZREM', k, unpack(ARGV, i + 3, last)); i = last + 1
  elseif op == 'ZREMIF' then
    local score = redis.call('ZSCORE', k, ARGV[i + 3])
    if score and tonumber(score) == tonumber(ARGV[i + 2]) then
      redis.call('ZREM', k, ARGV[i + 3])
    end
    i = i + 4
  elseif op == 'SADD' then
    redis.call('SADD', k, ARGV[i + 2]); i = i + 3
  elseif op == 'HDEL' then
    redis.call('HDEL', k, ARGV[i + 2]); i = i + 3
  elseif op == 'DEL' then
    redis.call('DEL', k); i = i + 2
  elseif op == 'REPLY' then
    redis.call('LPUSH', k, ARGV[i + 3])
    redis.call('PEXPIRE', k, ARGV[i + 2])
    i = i + 4
  elseif op == 'HINCR' then
    redis.call('HINCRBY', k, ARGV[i + 2], ARGV[i + 3]); i = i + 4
  else
    return redis.error_reply('BADOP ' .. tostring(op))
  end
  applied = applied + 1
end

local timers = tonumber(ARGV[2])
if timers == 0 then
  return applied
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out = { applied, now, -1 }
-- The earliest timer first: when it is not due (the common case) nothing else is read.
local first = redis.call('ZRANGE', KEYS[timers], 0, 0, 'WITHSCORES')
if first[2] then
  local first_due = tonumber(first[2])
  if first_due > now then
    out[3] = first_due
  else
    local due = redis.call('ZRANGEBYSCORE', KEYS[timers], '-inf', now, 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[3]))
    local after = redis.call('ZRANGE', KEYS[timers], #due / 2, #due / 2, 'WITHSCORES')
    if after[2] then out[3] = tonumber(after[2]) end
    for j = 1, #due, 2 do
      out[#out + 1] = due[j]
      out[#out + 1] = tonumber(due[j + 1])
    end
  end
end
return out
