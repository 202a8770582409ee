-- send_command.lua: put a command for an existing instance on its partition's command
-- stream with a deadline by the Redis clock. The coordinator never applies a command past
-- its deadline (it checks again inside `commit.lua`), so a caller who saw no verdict by
-- then knows that nothing changed, and never will.
--
-- KEYS[1]: the command stream.
-- ARGV[1]: the wire-encoded command; ARGV[2]: how long it may wait, in milliseconds.
-- Returns: the deadline (ms since the epoch, Redis clock).

local t = redis.call('TIME')
local deadline = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[2])
redis.call('XADD', KEYS[1], '*', 'm', ARGV[1], 'd', deadline)
return deadline
