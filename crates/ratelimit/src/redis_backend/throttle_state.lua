-- Reads a throttle key. KEYS[1]: the key (see throttle_failure.lua).
-- Returns {failures, microseconds since the last failure}; {0, 0} for an unknown key.
local state = redis.call('HMGET', KEYS[1], 'n', 't')
if not state[1] or not state[2] then
  return {0, 0}
end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
return {tonumber(state[1]), math.max(now - tonumber(state[2]), 0)}
