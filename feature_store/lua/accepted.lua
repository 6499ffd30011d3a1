-- Record that a customer accepted an offer: the profile field accepted:<offer> holds the
-- newest time they accepted it (ms), which the contact policy reads (an offer is not
-- made again for its after_accepted_s). The newest time is kept, so an outcome read
-- again (redelivered, or read again by a restarted learner) changes nothing. Nothing is
-- written for an erased customer (their tombstone: an outcome read after the erasure
-- brings no key back), nor for one with no profile (expired, or never made): a profile
-- made here would have no lifetime, and would hold nothing else.
-- KEYS: 1 profile hash, 2 tombstone.
-- ARGV: 1 offer id, 2 accepted at (ms since the epoch), 3 '1' to write only where no
-- time is held (a copy of an outcome claimed before: one stamped later, sent again with
-- its sending time, must not start the hold-back again), '' to keep the newest.
-- Returns 1 when written, 0 when the profile held that time or a later one already, 2
-- when the customer is erased, 3 when they have no profile. A profile of another type
-- is an error, before any write.
if redis.call('EXISTS', KEYS[2]) == 1 then return 2 end
local found = redis.call('TYPE', KEYS[1])['ok']
if found == 'none' then return 3 end
if found ~= 'hash' then
  return redis.error_reply('WRONGTYPE the profile holds a ' .. found)
end
local field = 'accepted:' .. ARGV[1]
local at = tonumber(ARGV[2])
local current = tonumber(redis.call('HGET', KEYS[1], field))
if current and (ARGV[3] == '1' or current >= at) then return 0 end
redis.call('HSET', KEYS[1], field, ARGV[2])
return 1
