-- lease.lua: take or renew a partition lease.
--
-- KEYS[1]: the partition's lease key.
-- ARGV[1]: coordinator id; ARGV[2]: lease time in ms.
-- Returns 1 if the caller holds the lease now (taken or renewed), 0 if another does.
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
elseif not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
