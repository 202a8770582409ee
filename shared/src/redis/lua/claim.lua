-- claim.lua: the partition's lease holder takes over the input entries other coordinators
-- left pending (read, never committed: a dead holder's, or a frozen one's that read once
-- more after losing its lease), then removes those consumers. Atomic: a consumer is
-- deleted only once it has nothing pending, so no entry can fall out of the pending list.
--
-- KEYS[1]: the partition's lease key; KEYS[2..]: the input streams (commands, results).
-- ARGV[1]: the coordinators' group; ARGV[2]: the caller's id (its consumer name);
-- ARGV[3]: at most this many entries moved per consumer and stream in one call.
-- Returns the number of entries moved to the caller (it reads them with ID 0), or the error
-- "LEASE" when the caller does not hold the lease (it must not read).
if redis.call('GET', KEYS[1]) ~= ARGV[2] then
  return redis.error_reply('LEASE')
end
local limit = tonumber(ARGV[3])
local moved = 0
for k = 2, #KEYS do
  local consumers = redis.pcall('XINFO', 'CONSUMERS', KEYS[k], ARGV[1])
  if type(consumers) == 'table' and not consumers.err then
    for _, c in ipairs(consumers) do
      local name, pending = nil, 0
      for i = 1, #c, 2 do
        if c[i] == 'name' then name = c[i + 1] elseif c[i] == 'pending' then pending = c[i + 1] end
      end
      if name and name ~= ARGV[2] then
        local left = pending
        if pending > 0 then
          local entries = redis.call('XPENDING', KEYS[k], ARGV[1], '-', '+', limit, name)
          local ids = {}
          for _, e in ipairs(entries) do ids[#ids + 1] = e[1] end
          local n = #ids
          if n > 0 then
            -- JUSTID: a move is not a delivery (the caller's read counts as one).
            ids[n + 1] = 'JUSTID'
            redis.call('XCLAIM', KEYS[k], ARGV[1], ARGV[2], 0, unpack(ids))
            moved = moved + n
          end
          left = pending - n
        end
        if left <= 0 then
          redis.call('XGROUP', 'DELCONSUMER', KEYS[k], ARGV[1], name)
        end
      end
    end
  end
end
return moved
