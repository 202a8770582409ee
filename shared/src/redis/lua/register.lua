-- register.lua: register a definition version; immutable once registered.
--
-- KEYS[1]: the definitions hash. ARGV[1]: `name@version`; ARGV[2]: canonical JSON.
-- Returns 1 if registered now, 0 if the same content was registered before, or the error
-- "CONFLICT" if other content is registered under that version.
local existing = redis.call('HGET', KEYS[1], ARGV[1])
if not existing then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
  return 1
elseif existing == ARGV[2] then
  return 0
end
return redis.error_reply('CONFLICT')
