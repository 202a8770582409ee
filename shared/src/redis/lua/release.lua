-- release.lua: give a partition lease up, only if the caller holds it.
--
-- KEYS[1]: the partition's lease key. ARGV[1]: coordinator id.
-- ARGV[2] (optional): a coordinator to hand the lease to; ARGV[3]: its lease time in ms.
-- Without ARGV[2] the lease is deleted (any coordinator takes it at once); with it, the
-- lease is set to that coordinator for ARGV[3] ms, so a rebalance hands a partition to the
-- coordinator short of its share and to no one else (it renews it at its next tick; if it
-- died meanwhile, the lease expires and anyone takes it).
-- Returns 1 if released, 0 if the caller did not hold it.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  if ARGV[2] and ARGV[2] ~= '' then
    redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  else
    redis.call('DEL', KEYS[1])
  end
  return 1
end
return 0
