-- Prelude of every script: the budget clock. Redis TIME (seconds and
-- microseconds) is the one clock all clients share, so host clocks do not
-- matter; it is counted in ms from 2024-01-01 (small numbers keep a double's
-- precision below 1 µs for decades) and multiplied by the time scale, so
-- that clients rehearsing with --time-scale K agree on a K-times faster
-- clock. `wall` (unscaled) times leases and liveness; `now` (scaled) times
-- buckets and pauses.
local t = redis.call('TIME')
local wall = (tonumber(t[1]) - 1704067200) * 1000 + tonumber(t[2]) / 1000
local scale = tonumber(ARGV[1])
local now = wall * scale
local function fmt(x) return string.format('%.3f', x) end
-- The limit in force: the lowest of the caller's and the learned one (0: unknown).
local function lowest(given, learned)
  if learned > 0 and (given <= 0 or learned < given) then return learned end
  return given
end
