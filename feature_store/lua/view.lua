-- Everything Moments holds about one customer, in one call: whether they were erased,
-- and else their profile, windows and contacts (flat field/value arrays) and recent
-- touchpoints.
-- KEYS: 1 tombstone, 2 profile hash, 3 windows hash, 4 contacts hash, 5 recent zset,
--       6 opt-outs hash
if redis.call('EXISTS', KEYS[1]) == 1 then return {1} end
return {0, redis.call('HGETALL', KEYS[2]), redis.call('HGETALL', KEYS[3]),
        redis.call('HGETALL', KEYS[4]), redis.call('ZRANGE', KEYS[5], 0, -1),
        redis.call('HGETALL', KEYS[6])}
