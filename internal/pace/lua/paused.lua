-- paused: how long the pauses in force on these kinds still last.
-- KEYS: 1 pause (HASH)   ARGV: 1 scale, 2.. kinds
-- Returns the longest remaining pause (budget ms, string; <= 0: none).
local w = 0
for i = 2, #ARGV do
  w = math.max(w, tonumber(redis.call('HGET', KEYS[1], ARGV[i]) or '0') - now)
end
return fmt(w)
