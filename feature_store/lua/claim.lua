-- Claim an outcome for learning, once per (decision, outcome). The claim remembers the
-- record it came from, so a replay of that same record (after a learner restart)
-- claims again, while a redelivered copy from another record does not. Each claim is
-- kept for the lifetime of a decision context (an outcome whose context is gone
-- teaches nothing): a sorted set holds when each was made, and older ones are removed
-- here, a bounded number per call. An outcome whose decision context is not stored
-- (expired, unknown, or not recorded yet) is not claimed: sent back once its decision
-- is stored, it is learned then.
-- An outcome for an offer its decision did not make (or naming an intervention's id) is
-- not claimed either: it teaches nothing, and claims of made-up offers would grow the
-- customer's hash without bound.
-- KEYS: 1 outcomes hash, 2 tombstone, 3 claim times (field -> ms), 4 decision context.
-- ARGV: 1 field, 2 source record, 3 lifetime (s), 4 now (ms), 5 the outcome's offer id.
-- Returns 1 to learn from it (claimed now), 3 to learn from it again (claimed before by
-- this same record: read again, it is not a new outcome), 0 to skip it, 2 when its
-- decision context is not stored (and it was not claimed before), 4 when the customer
-- is erased, 5 when its decision made no such offer, 6 when the context is no offer
-- decision's (an intervention's), 7 when the context key holds no string. Keys 1 and 3
-- of another type are an error before any write.
if redis.call('EXISTS', KEYS[2]) == 1 then return 4 end
for i, wanted in pairs({[1] = 'hash', [3] = 'zset'}) do
  local found = redis.call('TYPE', KEYS[i])['ok']
  if found ~= 'none' and found ~= wanted then
    return redis.error_reply('WRONGTYPE key ' .. i .. ' of the claim holds a ' .. found)
  end
end
local now = tonumber(ARGV[4])
if redis.call('EXISTS', KEYS[3]) == 0 then
  -- claims made before their times were kept: their lifetime starts now
  for _, field in ipairs(redis.call('HKEYS', KEYS[1])) do
    redis.call('ZADD', KEYS[3], now, field)
  end
  redis.call('EXPIRE', KEYS[3], ARGV[3])  -- whatever this claim turns out to be
end
local expired = now - tonumber(ARGV[3]) * 1000
local old = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', '(' .. expired, 'LIMIT', 0, 100)
for _, field in ipairs(old) do
  redis.call('HDEL', KEYS[1], field)
  redis.call('ZREM', KEYS[3], field)
end
local current = redis.call('HGET', KEYS[1], ARGV[1])
-- claimed before: a restarted learner reads it again, or a copy came, whether or not its
-- context is still kept (a claimed outcome is not set aside for want of one)
if current == ARGV[2] then return 3 end
if current then return 0 end
local stored = redis.call('TYPE', KEYS[4])['ok']
if stored == 'none' then return 2 end
if stored ~= 'string' then return 7 end  -- no context can be read from it
local context = redis.call('GET', KEYS[4])
if not string.find(context, '"offers":', 1, true) then return 6 end
-- (an id with a quote or a backslash is no catalogue id, and could match across fields)
if string.find(ARGV[5], '["\\]')
   or not string.find(context, '"offer_id":"' .. ARGV[5] .. '"', 1, true) then
  return 5
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[3], now, ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('EXPIRE', KEYS[3], ARGV[3])
return 1
