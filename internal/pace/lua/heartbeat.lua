-- heartbeat: this client is alive, and still holds these leases.
-- KEYS: 1 clients (ZSET id -> last seen, wall ms)  2 inflight  3 meta (HASH)
-- ARGV: 1 scale  2 client id  3 lease ttl (wall ms)  4 alive window (wall ms), 5.. leases
-- Returns how many clients were seen within the window (this one included).
redis.call('ZADD', KEYS[1], wall, ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', wall - 3600000) -- gone for an hour
local ttl = tonumber(ARGV[3])
for i = 5, #ARGV do redis.call('ZADD', KEYS[2], 'XX', wall + ttl, ARGV[i]) end
redis.call('HSET', KEYS[3], 'scale', ARGV[1])
return redis.call('ZCOUNT', KEYS[1], wall - tonumber(ARGV[4]), '+inf')
