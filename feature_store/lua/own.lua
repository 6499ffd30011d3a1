-- Claim a touchpoint's decision for the worker deciding it, before any contact or
-- budget unit of it is counted: the same touchpoint may reach two workers at once (a
-- copy produced to another partition), and one decision id must carry one offer set.
-- The claim is two members of the seen zset: 'o:' .. trigger (when it was claimed) and
-- 'o:' .. trigger .. '|' .. owner (who claimed it: the source record, topic/partition/
-- offset, so that the same record read again, after a crash or a retried batch, still
-- owns its decision). A claim whose owner recorded nothing within the lease (its batch
-- given up) can be taken over, by a re-driven letter say.
-- KEYS: 1 seen zset, 2 tombstone
-- ARGV: 1 trigger fact id, 2 owner, 3 now (ms), 4 lease (ms)
-- Returns 1 owned (claimed now, or before by the same owner, or no claim needed: an
-- erased customer's decision is refused when recorded), 0 another owner's.
if redis.call('EXISTS', KEYS[2]) == 1 then return 1 end
local found = redis.call('TYPE', KEYS[1])['ok']
if found ~= 'none' and found ~= 'zset' then
  return redis.error_reply('WRONGTYPE key 1 of the claim holds a ' .. found)
end
local claim = 'o:' .. ARGV[1]
local mine = claim .. '|' .. ARGV[2]
if redis.call('ZSCORE', KEYS[1], mine) then return 1 end
local since = redis.call('ZSCORE', KEYS[1], claim)
if since then
  -- another owner's: theirs while it is live, and for good once they recorded it
  local recorded = redis.call('ZSCORE', KEYS[1], 'u:' .. ARGV[1])
                   or redis.call('ZSCORE', KEYS[1], 'd:' .. ARGV[1])
  if recorded or tonumber(ARGV[3]) - tonumber(since) < tonumber(ARGV[4]) then return 0 end
end
redis.call('ZADD', KEYS[1], ARGV[3], claim)
redis.call('ZADD', KEYS[1], ARGV[3], mine)
-- a seen set made here (its touchpoint's expired meanwhile) does not outlive the lease
if redis.call('PTTL', KEYS[1]) == -1 then redis.call('PEXPIRE', KEYS[1], ARGV[4]) end
return 1
