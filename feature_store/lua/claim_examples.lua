-- Claim a learner's examples for learning, once per example id. A claim remembers the
-- record it came from, so a replay of that same record (a learner restarted from a
-- snapshot that lacks it, here or in another process) claims again, while a copy sent
-- in another record does not. Each claim is kept for a lifetime: a sorted set holds when
-- each was made, and older ones are removed here (more per call than it claims), and
-- both keys expire once nothing was claimed for a lifetime. The keys are the learner's,
-- not a customer's (an example id names its customer only by a keyed hash).
-- KEYS: 1 claims hash (example id -> source record), 2 claim times (example id -> ms).
-- ARGV: 1 lifetime (s), 2 now (ms), then pairs: example id, source record.
-- Returns, per example: 1 claimed now, 3 claimed before by this same record, 0 a copy
-- (claimed by another record).
local now = tonumber(ARGV[2])
local expired = now - tonumber(ARGV[1]) * 1000
local claims = (#ARGV - 2) / 2
local old = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', '(' .. expired, 'LIMIT', 0,
                       2 * claims + 100)
for _, field in ipairs(old) do
  redis.call('HDEL', KEYS[1], field)
  redis.call('ZREM', KEYS[2], field)
end
local result = {}
for i = 1, claims do
  local id, source = ARGV[1 + 2 * i], ARGV[2 + 2 * i]
  local current = redis.call('HGET', KEYS[1], id)
  if not current then
    redis.call('HSET', KEYS[1], id, source)
    redis.call('ZADD', KEYS[2], now, id)
    result[i] = 1
  elseif current == source then
    result[i] = 3
  else
    result[i] = 0
  end
end
redis.call('EXPIRE', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[2], ARGV[1])
return result
