-- What a decision needs of one customer, in one call: whether they were erased, and
-- else their profile, windows and contacts (flat field/value arrays) and recent
-- touchpoints.
-- KEYS: 1 tombstone, 2 profile hash, 3 windows hash, 4 contacts hash, 5 recent zset
-- ARGV: 1 'full' for everything; 'decision' leaves out the recent touchpoints and the
--       5-minute and hourly buckets (only the activity windows up to 24 h use them)
if redis.call('EXISTS', KEYS[1]) == 1 then return {1} end
local windows = redis.call('HGETALL', KEYS[3])
local recent = {}
if ARGV[1] == 'full' then
  recent = redis.call('ZRANGE', KEYS[5], 0, -1)
else
  local kept, d, k = {}, string.byte('d'), string.byte('k')
  for i = 1, #windows, 2 do
    local first = string.byte(windows[i], 1)
    if first == d or first == k then
      kept[#kept + 1] = windows[i]
      kept[#kept + 1] = windows[i + 1]
    end
  end
  windows = kept
end
return {0, redis.call('HGETALL', KEYS[2]), windows, redis.call('HGETALL', KEYS[4]), recent}
