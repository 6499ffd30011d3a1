-- Apply one touchpoint to one customer, atomically and at most once.
-- KEYS[1] profile hash, KEYS[2] seen-events sorted set, KEYS[3] recent-touchpoints list
-- ARGV[1] event_id        ARGV[2] event ts (ms)   ARGV[3] now (ms)
-- ARGV[4] ttl (s)         ARGV[5] dedupe horizon (ms)
-- ARGV[6] recent item     ARGV[7] recent length
-- ARGV[8..] updates as (op, field, value) triples; ops:
--   incr   add an integer          max / min  keep the larger / smaller number
--   latest keep the value with the newest event ts (ties: the smaller value wins)
-- Returns 1 applied, 0 duplicate, 2 duplicate whose decision was already sent.
local profile, seen, recent = KEYS[1], KEYS[2], KEYS[3]
local event_id = ARGV[1]
if redis.call('ZSCORE', seen, event_id) then
  if redis.call('ZSCORE', seen, 'd:' .. event_id) then return 2 end
  return 0
end
local ts = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local ttl = tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', seen, '-inf', '(' .. (now - tonumber(ARGV[5])))
redis.call('ZADD', seen, now, event_id)

local i = 8
while i + 2 <= #ARGV do
  local op, field, value = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  if op == 'incr' then
    redis.call('HINCRBY', profile, field, value)
  elseif op == 'max' or op == 'min' then
    local current = tonumber(redis.call('HGET', profile, field))
    local v = tonumber(value)
    if current == nil or (op == 'max' and v > current) or (op == 'min' and v < current) then
      redis.call('HSET', profile, field, value)
    end
  elseif op == 'latest' then
    local stamp = field .. '@'
    local current_ts = tonumber(redis.call('HGET', profile, stamp))
    local newer = current_ts == nil or ts > current_ts
    if not newer and ts == current_ts then
      newer = value < (redis.call('HGET', profile, field) or value)
    end
    if newer then
      redis.call('HSET', profile, field, value, stamp, ARGV[2])
    end
  else
    return redis.error_reply('unknown update op ' .. op)
  end
  i = i + 3
end

local recent_len = tonumber(ARGV[7])
if recent_len > 0 then
  redis.call('LPUSH', recent, ARGV[6])
  redis.call('LTRIM', recent, 0, recent_len - 1)
  redis.call('EXPIRE', recent, ttl)
end
redis.call('EXPIRE', profile, ttl)
redis.call('EXPIRE', seen, ttl)
return 1
