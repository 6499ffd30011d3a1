-- Count offers shown against their daily budgets, once per decision: a decision counted
-- already (a retried write, a replayed topic), or taken back already (a retried write
-- that came after the take-back), adds nothing.
-- KEYS: 1 the day's counts (hash), 2 the day's decisions counted (set; a decision taken
-- back is in it as '~' .. its id), one hash slot.
-- ARGV: 1 ttl (s), then per decision: its id, the number n of offers, the n offer ids.
-- Returns the number of decisions counted now.
local fault = budget_counts_fault(2)  -- budget_counts.lua: before the first write
if fault then return fault end
local i, counted = 2, 0
while i <= #ARGV do
  local n = tonumber(ARGV[i + 1])
  if redis.call('SISMEMBER', KEYS[2], '~' .. ARGV[i]) == 0
      and redis.call('SADD', KEYS[2], ARGV[i]) == 1 then
    for j = 1, n do redis.call('HINCRBY', KEYS[1], ARGV[i + 1 + j], 1) end
    counted = counted + 1
  end
  i = i + 2 + n
end
redis.call('EXPIRE', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[2], ARGV[1])
return counted
