-- Claim an outcome for learning, once per (decision, outcome). The claim remembers the
-- record it came from, so a replay of that same record (after a learner restart)
-- claims again, while a redelivered copy from another record does not.
-- KEYS: 1 outcomes hash, 2 tombstone. ARGV: 1 field, 2 source record, 3 ttl (s).
-- Returns 1 to learn from it, 0 to skip it.
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
local current = redis.call('HGET', KEYS[1], ARGV[1])
if not current then
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
  redis.call('EXPIRE', KEYS[1], ARGV[3])
  return 1
end
if current == ARGV[2] then return 1 end
return 0
