-- GCRA, one step; a line-by-line copy of `check` in src/gcra.rs. Times in microseconds.
-- KEYS[1]: the key, holding its theoretical arrival time (TAT).
-- ARGV[1]: the emission interval (period / limit); ARGV[2]: the limit.
-- Returns {allowed (1|0), remaining, reset_after, retry_after}.
if redis.replicate_commands then redis.replicate_commands() end -- TIME before a write, Redis < 5
local interval = tonumber(ARGV[1])
local window = interval * tonumber(ARGV[2])
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local tat = now
local stored = redis.call('GET', KEYS[1])
if stored then
  tat = math.max(tonumber(stored), now)
end
local new_tat = tat + interval
local allow_at = new_tat - window
if now < allow_at then
  return {0, 0, tat - now, allow_at - now}
end
local used = new_tat - now
-- The key means nothing once its TAT has passed: let Redis drop it then.
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.ceil(used / 1000))
return {1, math.floor((window - used) / interval), used, 0}
