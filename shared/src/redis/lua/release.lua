-- release.lua: give a partition lease up, only if the caller holds it.
--
-- KEYS[1]: the partition's lease key. ARGV[1]: coordinator id.
-- Returns 1 if released, 0 if the caller did not hold it.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
