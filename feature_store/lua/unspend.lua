-- Take back what decisions that were never made added to the daily budgets (a decision
-- the store refused to record, its customer erased meanwhile), once per decision: one
-- not counted, or taken back already, takes nothing. With ARGV[2] = 1, each is marked
-- taken back ('~' .. its id), so that a write of its spending that arrives later
-- (retried) adds nothing; with 0 it is not (the same decision may be counted again: a
-- worker's decision, taken again under its id, that shows the same offers).
-- KEYS: 1 the day's counts (hash), 2 the day's decisions counted (set), one hash slot.
-- ARGV: 1 ttl (s), 2 mark (1 or 0), then per decision: its id, the number n of offers,
--       the n offer ids.
-- Returns the number of decisions taken back now.
local fault = budget_counts_fault(3)  -- budget_counts.lua: before the first write
if fault then return fault end
local i, taken = 3, 0
while i <= #ARGV do
  local n = tonumber(ARGV[i + 1])
  if ARGV[2] == '1' then redis.call('SADD', KEYS[2], '~' .. ARGV[i]) end
  if redis.call('SREM', KEYS[2], ARGV[i]) == 1 then
    for j = 1, n do
      if redis.call('HINCRBY', KEYS[1], ARGV[i + 1 + j], -1) <= 0 then
        redis.call('HDEL', KEYS[1], ARGV[i + 1 + j])
      end
    end
    taken = taken + 1
  end
  i = i + 2 + n
end
redis.call('EXPIRE', KEYS[2], ARGV[1])
return taken
