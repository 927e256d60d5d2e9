-- Counts an attempt unless the key must still wait (see throttle_failure.lua for the key).
-- KEYS[1]: the key. ARGV[1]: failures free of delay; ARGV[2]: delay after the first failure past
-- them, microseconds; ARGV[3]: the longest delay, microseconds; ARGV[4]: milliseconds after which
-- the failures are forgotten.
-- Returns -1 when the key has no failures (go ahead, nothing counted), 0 when the attempt went
-- ahead and was counted as a failure, else the microseconds still to wait (check and count are
-- one step, so concurrent attempts cannot all see the old count).
if redis.replicate_commands then redis.replicate_commands() end -- TIME before a write, Redis < 5
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local state = redis.call('HMGET', KEYS[1], 'n', 't')
local count = tonumber(state[1]) or 0
local last = tonumber(state[2]) or now
if count == 0 then
  return -1
end
local free = tonumber(ARGV[1])
if count > free then
  local delay = tonumber(ARGV[3])
  local doublings = count - free - 1
  if doublings < 60 then
    delay = math.min(tonumber(ARGV[2]) * (2 ^ doublings), delay)
  end
  local remaining = delay - math.max(now - last, 0)
  if remaining > 0 then
    return math.floor(remaining)
  end
end
redis.call('HINCRBY', KEYS[1], 'n', 1)
redis.call('HSET', KEYS[1], 't', string.format('%.0f', now))
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 0
