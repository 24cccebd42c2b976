-- pause: a 429 on one limit stops every client's requests that need it
-- until the server's wait is over, and empties that bucket (the server has
-- just said it is empty).
-- KEYS: 1 limits (HASH)  2 pause (HASH kind -> until)  3 tat  4 stats (HASH)
-- ARGV: 1 scale  2 headroom  3 kind  4 limit the caller knows  5 period  6 wait (budget ms)
-- Returns 1 when the pause was extended (0: one as long was in force).
local headroom, kind, d = tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[6])
local untl = now + d
local ext = 0
if untl > tonumber(redis.call('HGET', KEYS[2], kind) or '0') then
  redis.call('HSET', KEYS[2], kind, fmt(untl))
  ext = 1
end
redis.call('PEXPIRE', KEYS[2], math.ceil(d / scale) + 60000)
redis.call('HINCRBY', KEYS[4], 'paused:' .. kind, 1)
local lim = lowest(tonumber(ARGV[4]), tonumber(redis.call('HGET', KEYS[1], kind) or '0'))
if lim > 0 then
  local T = tonumber(ARGV[5]) / lim
  local empty = now + math.max(1, math.floor(lim * headroom)) * T
  if tonumber(redis.call('GET', KEYS[3]) or '0') < empty then
    redis.call('SET', KEYS[3], fmt(empty), 'PX', math.ceil((empty - now) / scale) + 1000)
  end
end
return ext
