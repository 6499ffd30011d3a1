-- Publish a model snapshot if nobody published since the caller's version.
-- KEYS: 1 model hash, 2 history key for the new version.
-- ARGV: 1 expected current version, 2 payload, 3 history ttl (s).
-- Returns the new version, or -1 when the expected version is stale.
local current = tonumber(redis.call('HGET', KEYS[1], 'version') or '0')
if current ~= tonumber(ARGV[1]) then return -1 end
local new = current + 1
redis.call('HSET', KEYS[1], 'version', new, 'payload', ARGV[2])
redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[3])
return new
