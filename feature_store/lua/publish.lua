-- Publish a model snapshot if nobody published since the caller's version. Only the
-- newest snapshot is kept. With an empty payload, only the learner's topic positions
-- move on (records that taught nothing): same model, same version.
-- KEYS: 1 model hash.
-- ARGV: 1 expected current version, 2 payload (or ''), 3 topic positions (with ''),
-- 4 the payload's digest (kept as '<version>:<digest>', so that a snapshot an older
-- publisher writes over it, which knows nothing of digests, is not taken for damaged).
-- Returns the new (or, for positions, the current) version, or -1 when the expected
-- version is stale.
local current = tonumber(redis.call('HGET', KEYS[1], 'version') or '0')
if current ~= tonumber(ARGV[1]) then return -1 end
if ARGV[2] == '' then
  -- the positions name the version they read on from: a snapshot published over them
  -- (by this script, or an older one that knows nothing of them) is not theirs
  redis.call('HSET', KEYS[1], 'positions', ARGV[3], 'positions_at', current)
  return current
end
local new = current + 1
redis.call('HSET', KEYS[1], 'version', new, 'payload', ARGV[2])
if ARGV[4] and ARGV[4] ~= '' then
  redis.call('HSET', KEYS[1], 'digest', new .. ':' .. ARGV[4])
else
  redis.call('HDEL', KEYS[1], 'digest')
end
redis.call('HDEL', KEYS[1], 'positions', 'positions_at')  -- the payload carries its own
return new
