-- Claim a touchpoint's decision for the worker deciding it, before any contact or
-- budget unit of it is counted: the same touchpoint may reach two workers at once (a
-- copy produced to another partition), and one decision id must carry one offer set.
-- The claim is a key of its own beside the customer's, holding its owner (the source
-- record, topic/partition/offset: the same record read again, after a crash or in a
-- retried batch, still owns its decision) for the lease; decision.lua deletes it when
-- the decision is marked decided (sent). A claim whose owner sent nothing within the
-- lease (its batch given up) has expired, and is taken over by whoever decides next.
-- KEYS: 1 claim string, 2 seen zset, 3 tombstone
-- ARGV: 1 trigger fact id, 2 owner, 3 lease (ms)
-- Returns 1 owned (claimed now, or before by the same owner, or no claim needed: an
-- erased customer's decision is refused when recorded), 0 not: another owner's, or
-- sent already.
if redis.call('EXISTS', KEYS[3]) == 1 then return 1 end
for i, want in pairs({[1] = 'string', [2] = 'zset'}) do
  local found = redis.call('TYPE', KEYS[i])['ok']
  if found ~= 'none' and found ~= want then
    return redis.error_reply('WRONGTYPE key ' .. i .. ' of the claim holds a ' .. found)
  end
end
local holder = redis.call('GET', KEYS[1])
if holder then
  if holder == ARGV[2] then return 1 end
  return 0
end
if redis.call('ZSCORE', KEYS[2], 'd:' .. ARGV[1]) then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
