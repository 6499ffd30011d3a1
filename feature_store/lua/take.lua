-- Count offers shown against their daily budgets within their limits, once per
-- decision (spend.lua's count, checked where it is written): a decision whose offers
-- would take one of them past its limit is refused, and nothing of it is added, so that
-- processes deciding at once cannot take a budget past its limit between them. The
-- decisions are taken in order: first come, first served. One counted already (a retried
-- write, a replay) adds nothing and stands; one taken back already ('~' .. its id: it
-- was not made) is refused.
-- KEYS: 1 the day's counts (hash), 2 the day's decisions counted (set), one hash slot.
-- ARGV: 1 ttl (s), 2 the limits as JSON {offer id: limit} (an offer not named has none),
--       then per decision: its id, the number n of offers, the n offer ids.
-- Returns the positions (1 for the first decision) of the decisions refused.
local limits = cjson.decode(ARGV[2])
local fault = budget_counts_fault(3)  -- budget_counts.lua: before the first write
if fault then return fault end
local position, refused = 0, {}
local i = 3
while i <= #ARGV do
  local id, n = ARGV[i], tonumber(ARGV[i + 1])
  position = position + 1
  if redis.call('SISMEMBER', KEYS[2], '~' .. id) == 1 then
    table.insert(refused, position)
  elseif redis.call('SISMEMBER', KEYS[2], id) == 0 then
    local over = false
    for j = 1, n do
      local offer = ARGV[i + 1 + j]
      local limit = limits[offer]
      if limit and (tonumber(redis.call('HGET', KEYS[1], offer)) or 0) >= limit then
        over = true
      end
    end
    if over then
      table.insert(refused, position)
    else
      redis.call('SADD', KEYS[2], id)
      for j = 1, n do redis.call('HINCRBY', KEYS[1], ARGV[i + 1 + j], 1) end
    end
  end
  i = i + 2 + n
end
redis.call('EXPIRE', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[2], ARGV[1])
return refused
