-- Erase one customer: delete every key, then leave a tombstone so that replays and
-- late events cannot bring the profile back. KEYS: the customer's keys, the
-- tombstone last. ARGV: 1 tombstone ttl (s), 2 erased-at (ms).
-- Returns, per key before the tombstone, 1 if it existed.
local removed = {}
for i = 1, #KEYS - 1 do
  removed[i] = redis.call('DEL', KEYS[i])
end
redis.call('SET', KEYS[#KEYS], ARGV[2], 'EX', ARGV[1])
return removed
