-- reserve: one decision for one request of one model. Either it takes an
-- in-flight lease AND charges every bucket of the model (RPM, TPM, ...)
-- together, returning how long to wait before sending (GCRA as in
-- go-redis/redis_rate: the charge is reserved now, so waiters are served in
-- the order they asked: FIFO, no starvation), or it changes nothing but the
-- slot queue and says why the caller must ask again.
-- KEYS: 1 gate (HASH cap, epoch)   2 inflight (ZSET lease -> expiry, wall ms)
--       3 slotq (ZSET waiter -> arrival)   4 slotseen (HASH waiter -> last ask)
--       5 models (SET)   6 limits (HASH kind -> learned limit, settled, lim:/cap:/period:kind)
--       7 pause (HASH kind -> until)   8 probe (STRING lease)   9 clients (ZSET)
--       10.. tat per bucket
-- ARGV: 1 scale  2 lease id  3 lease ttl (wall ms)  4 max in flight  5 headroom
--       6 model  7 bucket count, then per bucket: kind, limit the caller
--       knows (0: unknown), period (budget ms), cost (units), seed (budget ms
--       the caller's state says the bucket is from full: its last seen debt,
--       or what its local fallback spent), force (1: a rejoin, apply the seed
--       to an existing bucket too, the later TAT of the two)
-- Returns {status, wait ms (string), epoch, probe, clients alive, limit...,
-- increment..., debt...} (debt: budget ms the bucket is from full, after this charge):
--   status 0: go after wait; 1: every slot taken; 2: another request is
--   probing unknown limits; 3: too large (wait holds the limit).
local lease, ttl, maxc, headroom = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local n = tonumber(ARGV[7])

-- 1. The buckets, and a charge that can never fit.
local b, limits, allknown = {}, {}, true
local learned = redis.call('HGETALL', KEYS[6])
local lh = {}
for i = 1, #learned, 2 do lh[learned[i]] = learned[i + 1] end
for i = 1, n do
  local a = 7 + (i - 1) * 6
  local kind, cost = ARGV[a + 1], tonumber(ARGV[a + 4])
  local lim = lowest(tonumber(ARGV[a + 2]), tonumber(lh[kind] or '0'))
  if lim <= 0 then allknown = false end
  if lim > 0 and cost > lim then return {3, tostring(lim), 0, 0} end
  b[i] = {kind = kind, lim = lim, period = tonumber(ARGV[a + 3]), cost = cost,
          seed = tonumber(ARGV[a + 5]), force = ARGV[a + 6] == '1'}
  limits[i] = lim
end

-- 2. An in-flight slot. Leases of dead clients expire; waiters that
-- stopped asking (killed, cancelled) leave the queue after 2 s.
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', wall)
local g = redis.call('HMGET', KEYS[1], 'cap', 'epoch')
local cap = tonumber(g[1]) or maxc
local epoch = tonumber(g[2]) or 0
local free = math.floor(math.min(cap, maxc)) - redis.call('ZCARD', KEYS[2])
local ahead, queued = 0, false
for _, w in ipairs(redis.call('ZRANGE', KEYS[3], 0, -1)) do
  if w == lease then queued = true break end
  if tonumber(redis.call('HGET', KEYS[4], w) or '0') < wall - 2000 then
    redis.call('ZREM', KEYS[3], w)
    redis.call('HDEL', KEYS[4], w)
  else
    ahead = ahead + 1
  end
end
if free <= ahead then -- FIFO: the earlier waiters take the free slots first
  if not queued then redis.call('ZADD', KEYS[3], wall, lease) end
  redis.call('HSET', KEYS[4], lease, wall)
  redis.call('PEXPIRE', KEYS[3], 60000)
  redis.call('PEXPIRE', KEYS[4], 60000)
  return {1, '0', epoch, 0}
end

-- 3. Unknown limits: one request goes first and its headers teach them.
local probe = 0
if not allknown and lh['settled'] ~= '1' then
  if not redis.call('SET', KEYS[8], lease, 'NX', 'PX', ttl) then return {2, '0', epoch, 0} end
  probe = 1
end

-- 4. Commit: the lease, then every bucket, then pauses in force.
redis.call('ZADD', KEYS[2], wall + ttl, lease)
redis.call('ZREM', KEYS[3], lease)
redis.call('HDEL', KEYS[4], lease)
redis.call('SADD', KEYS[5], ARGV[6])
local wait, incs, debts = 0, {}, {}
for i = 1, n do
  local x = b[i]
  incs[i] = '0'
  debts[i] = '0'
  if x.lim > 0 and x.cost > 0 then
    local c = math.max(1, math.floor(x.lim * headroom)) -- capacity: headroom x limit
    local T = x.period / x.lim                          -- emission interval, ms per unit
    local cost = math.min(x.cost, c)                    -- over capacity, under limit: the whole bucket
    -- A bucket created anew (first start, or a restart that lost the keys)
    -- starts from the caller's state, full only if it has spent nothing;
    -- on a rejoin the later TAT of the bucket's and the caller's wins.
    local cur = tonumber(redis.call('GET', KEYS[9 + i]) or '')
    local tat = now + math.max(x.seed, 0)
    if cur and not x.force then tat = cur elseif cur then tat = math.max(cur, tat) end
    tat = math.max(tat, now)
    local newtat = tat + cost * T
    wait = math.max(wait, newtat - c * T - now)         -- 0 while the bucket holds the cost
    redis.call('SET', KEYS[9 + i], fmt(newtat), 'PX', math.ceil((newtat - now) / scale) + 1000)
    redis.call('HSET', KEYS[6], 'lim:' .. x.kind, x.lim, 'cap:' .. x.kind, c, 'period:' .. x.kind, x.period)
    incs[i] = fmt(cost * T)
    debts[i] = fmt(newtat - now)
  end
  wait = math.max(wait, tonumber(redis.call('HGET', KEYS[7], x.kind) or '0') - now)
end
-- Clients alive (heartbeat or decision within 5 s): the share each takes if
-- Redis is lost. A decision counts as a heartbeat (lease ids are CLIENT:SEQ).
redis.call('ZADD', KEYS[9], wall, string.match(lease, '^(.*):%d+$') or lease)
local alive = redis.call('ZCOUNT', KEYS[9], wall - 5000, '+inf')
local out = {0, fmt(wait), epoch, probe, alive}
for i = 1, n do out[#out + 1] = limits[i] end
for i = 1, n do out[#out + 1] = incs[i] end
for i = 1, n do out[#out + 1] = debts[i] end
return out
