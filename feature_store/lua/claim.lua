-- Claim an outcome for learning. One shown offer (decision, offer: an impression) is one
-- example: its field in the outcomes hash lists the outcomes claimed for it, in order, as
-- "<source record>|<outcome>|<reward>" (reward '' for one that teaches nothing), so that
-- each outcome kind is claimed once, and the model learns the impression's strongest
-- reward once. Its first rewarded outcome is learned (1); a later one with a higher
-- reward relabels that example (8, with the reward learned before it); one with a lower
-- or equal reward teaches nothing (10). The claim remembers the record each outcome came
-- from, so a replay of that same record (after a learner restart from a snapshot that
-- lacks it) gets what it got then, from the outcomes before it in the list: 3 (learn
-- again), 9 (relabel again, with the reward before it) or 11 (nothing, again); a copy of
-- an outcome kind claimed by another record gets 0 (skip it).
-- A claim by the previous version ("<decision>:<offer>:<outcome>" -> source record, one
-- example per outcome kind) counts as learned with that outcome's reward.
-- Each claim is kept for the lifetime of a decision context (an outcome whose context is
-- gone teaches nothing): a sorted set holds when each was first made, and older ones are
-- removed here, a bounded number per call. An outcome whose decision context is not
-- stored (expired, unknown, or not recorded yet) is not claimed: sent back once its
-- decision is stored, it is learned then.
-- An outcome for an offer its decision did not make (or naming an intervention's id) is
-- not claimed either: it teaches nothing, and claims of made-up offers would grow the
-- customer's hash without bound.
-- KEYS: 1 outcomes hash, 2 tombstone, 3 claim times (field -> ms), 4 decision context.
-- ARGV: 1 field "<decision>:<offer>", 2 source record, 3 lifetime (s), 4 now (ms),
-- 5 the outcome's offer id, 6 the outcome, 7 the reward it teaches ('' for none: no
-- reward, or it cannot teach, dated before its decision say; '?' when the caller found
-- no decision context for it), then pairs of (outcome, reward) for each outcome kind the
-- previous version may have claimed.
-- Returns 1, 3, 0, 8, 9, 10, 11 as above (8 and 9 as {code, reward before}), 2 when its
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
-- the outcomes claimed for this impression: the previous version's first (each learned
-- as an example of its own), then this version's, in the order they were claimed
local claimed, before_form = {}, 0
local asked = {[ARGV[6]] = ARGV[7]}
for i = 8, #ARGV - 1, 2 do asked[ARGV[i]] = ARGV[i + 1] end
for outcome, reward in pairs(asked) do
  local source = redis.call('HGET', KEYS[1], ARGV[1] .. ':' .. outcome)
  if source then claimed[#claimed + 1] = {source, outcome, tonumber(reward)} end
end
before_form = #claimed
local current = redis.call('HGET', KEYS[1], ARGV[1])
if current then
  for source, outcome, reward in string.gmatch(current, '([^|,]*)|([^|,]*)|([^|,]*)') do
    claimed[#claimed + 1] = {source, outcome, tonumber(reward)}
  end
end
local function strongest(upto)  -- the reward learned from the first upto outcomes
  local best = nil
  for i = 1, upto do
    local reward = claimed[i][3]
    if reward and (best == nil or reward > best) then best = reward end
  end
  return best
end
local function verdict(reward, before, learn, relabel, nothing)
  if reward == nil or before == nil then return learn end
  if reward > before then return {relabel, tostring(before)} end
  return nothing
end
-- claimed before by this record: a restarted learner reads it again, whether or not its
-- context is still kept (a claimed outcome is not set aside for want of one)
for i, entry in ipairs(claimed) do
  if entry[1] == ARGV[2] then
    if i <= before_form then return 3 end
    return verdict(entry[3], strongest(i - 1), 3, 9, 11)
  end
end
for _, entry in ipairs(claimed) do
  if entry[2] == ARGV[6] then return 0 end  -- a copy, from another record
end
local stored = redis.call('TYPE', KEYS[4])['ok']
-- (the learner read no context for it just before: it judged it by none, so it is sent
-- back rather than claimed without a reward, should the context have come since)
if stored == 'none' or ARGV[7] == '?' then return 2 end
if stored ~= 'string' then return 7 end  -- no context can be read from it
local context = redis.call('GET', KEYS[4])
if not string.find(context, '"offers":', 1, true) then return 6 end
-- (an id with a quote or a backslash is no catalogue id, and could match across fields)
if string.find(ARGV[5], '["\\]')
   or not string.find(context, '"offer_id":"' .. ARGV[5] .. '"', 1, true) then
  return 5
end
local entry = ARGV[2] .. '|' .. ARGV[6] .. '|' .. ARGV[7]
redis.call('HSET', KEYS[1], ARGV[1], current and (current .. ',' .. entry) or entry)
redis.call('ZADD', KEYS[3], 'NX', now, ARGV[1])  -- kept from the impression's first claim
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('EXPIRE', KEYS[3], ARGV[3])
return verdict(tonumber(ARGV[7]), strongest(#claimed), 1, 8, 10)
