-- observe: what one response's x-ratelimit-* headers say, applied to the
-- shared budget: a per-minute limit in the headers becomes the model's
-- learned limit for every client, and x-ratelimit-remaining-* pulls a
-- bucket down to what the server has left (never up), as pace.Local does.
-- KEYS: 1 limits (HASH)   2.. tat per bucket
-- ARGV: 1 scale  2 headroom  3 budget ms since the request was sent (-1: unknown)
--       4 bucket count, then per bucket: kind, limit the caller knows,
--       period (budget ms), header limit (-1: absent), remaining (-1: absent),
--       per-minute window (1/0: a daily window is not this bucket)
-- Returns the limit in force per bucket.
local headroom, elapsed, n = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local out = {}
for i = 1, n do
  local a = 4 + (i - 1) * 6
  local kind, given, period = ARGV[a + 1], tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3])
  local hl, rem, per = tonumber(ARGV[a + 4]), tonumber(ARGV[a + 5]), ARGV[a + 6] == '1'
  if per and hl > 0 then redis.call('HSET', KEYS[1], kind, hl) end -- the server is the truth
  local lim = lowest(given, tonumber(redis.call('HGET', KEYS[1], kind) or '0'))
  out[i] = lim
  if lim > 0 and rem >= 0 and per then
    local c = math.max(1, math.floor(lim * headroom))
    local T = period / lim
    -- Keep the slack the headroom leaves in the server's bucket, plus what
    -- refilled since the server counted.
    local target = rem - (lim - c)
    if elapsed > 0 then target = target + elapsed / T end
    local tat = math.max(tonumber(redis.call('GET', KEYS[1 + i]) or '0'), now)
    local cur = c - (tat - now) / T
    -- A dead band of 5% keeps timing noise from draining the bucket.
    if cur > 0 and cur - target > math.max(1, 0.05 * c) then
      tat = tat + math.min(math.ceil(cur - math.max(target, 0)), c) * T
      redis.call('SET', KEYS[1 + i], fmt(tat), 'PX', math.ceil((tat - now) / scale) + 1000)
    end
  end
end
-- Any answer settles a probe: limits learned, or none to learn.
redis.call('HSET', KEYS[1], 'settled', '1')
return out
