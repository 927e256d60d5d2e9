-- Takes back one counted attempt (see throttle_attempt.lua). KEYS[1]: the key.
-- Returns the failure count left; the key is deleted when none is left.
local count = redis.call('HINCRBY', KEYS[1], 'n', -1)
if count <= 0 then
  redis.call('DEL', KEYS[1])
  return 0
end
return count
