-- Erase one customer: delete every key, the contexts of every decision the recent list
-- or the context index names (read here, so that a decision stored a moment before is
-- erased too), then leave a tombstone so that replays and late events cannot bring the
-- profile back. Context keys are the customer's (same hash tag, same slot), named by
-- prefix and decision id.
-- KEYS: the customer's keys, the tombstone last.
-- ARGV: 1 tombstone ttl (ms: what is left of the block), 2 erased-at (ms), 3 context
--       key prefix,
--       4.. positions in KEYS of the zsets that name decisions.
-- Returns, per key before the tombstone, 1 if it existed, then the contexts deleted.
local named, contexts = {}, 0
for i = 4, #ARGV do
  for _, id in ipairs(redis.call('ZRANGE', KEYS[tonumber(ARGV[i])], 0, -1)) do
    if not named[id] then
      named[id] = true
      contexts = contexts + redis.call('DEL', ARGV[3] .. id)
    end
  end
end
local removed = {}
for i = 1, #KEYS - 1 do
  removed[i] = redis.call('DEL', KEYS[i])
end
removed[#KEYS] = contexts
-- a block already longer (a later erasure, replayed first) is kept as it is
local left = redis.call('PTTL', KEYS[#KEYS])
if left == -2 or (left >= 0 and left < tonumber(ARGV[1])) then
  redis.call('SET', KEYS[#KEYS], ARGV[2], 'PX', ARGV[1])
end
return removed
