-- Counts one failure. KEYS[1]: the key (a hash: n = failures, t = last failure, microseconds on
-- Redis's clock). ARGV[1]: milliseconds after which the failures are forgotten.
-- Returns the failure count.
if redis.replicate_commands then redis.replicate_commands() end -- TIME before a write, Redis < 5
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local count = redis.call('HINCRBY', KEYS[1], 'n', 1)
redis.call('HSET', KEYS[1], 't', string.format('%.0f', now))
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return count
