-- release: a request ended. Frees its lease, adjusts the shared in-flight
-- cap (AIMD, as pace.Local's gate: halved once per epoch on a concurrency
-- 429, +1/cap per success), counts 429s, ends a probe, and on cancel gives
-- the charges back.
-- KEYS: 1 gate  2 inflight  3 stats  4 probe  5 limits  6.. tat per bucket
-- ARGV: 1 scale  2 lease  3 outcome (0 success, 1 failed, 2 rate limited,
--       3 concurrency limited, 4 not sent)  4 epoch of the lease  5 max in flight
--       6 give the charges back (1/0)  7 bucket count, then the increments (budget ms)
-- Returns {cap before, cap after}.
local lease, outcome, maxc = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[5])
redis.call('ZREM', KEYS[2], lease)
local g = redis.call('HMGET', KEYS[1], 'cap', 'epoch')
local cap = tonumber(g[1]) or maxc
local epoch = tonumber(g[2]) or 0
local before = cap
if outcome == 3 then
  if tonumber(ARGV[4]) == epoch then
    cap = math.max(1, math.floor(cap / 2))
    epoch = epoch + 1
  end
elseif outcome == 0 then
  cap = math.min(maxc, cap + 1 / cap)
end
redis.call('HSET', KEYS[1], 'cap', string.format('%.6f', cap), 'epoch', epoch)
if outcome == 2 or outcome == 3 then redis.call('HINCRBY', KEYS[3], '429', 1) end
if outcome == 0 then redis.call('HINCRBY', KEYS[3], 'ok', 1) end
if redis.call('GET', KEYS[4]) == lease then
  redis.call('DEL', KEYS[4])
  redis.call('HSET', KEYS[5], 'settled', '1')
end
if ARGV[6] == '1' then
  for i = 1, tonumber(ARGV[7]) do
    local inc = tonumber(ARGV[7 + i])
    local tat = tonumber(redis.call('GET', KEYS[5 + i]) or '0')
    if inc > 0 and tat > now then
      local nt = math.max(tat - inc, now)
      redis.call('SET', KEYS[5 + i], fmt(nt), 'PX', math.ceil((nt - now) / scale) + 1000)
    end
  end
end
return {math.floor(before), math.floor(cap)}
