-- now: the budget clock and the wall clock (ms, strings), for status.
-- ARGV: 1 scale
return {fmt(now), fmt(wall)}
