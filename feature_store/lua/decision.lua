-- Remember one decision for one customer: its context (for learning from outcomes,
-- kept for a while after the decision), its place in the customer's recent decisions,
-- and its id in the index of every context that may still be kept (the recent list
-- keeps only the newest, and erasure must find them all); mark its triggering
-- touchpoint as decided. A context whose time is up already (a decision replayed from
-- the topics) is not kept. Does nothing for an erased customer.
-- KEYS: 1 context string, 2 decisions zset, 3 seen zset, 4 tombstone, 5 context index zset,
--       6 recent-touchpoints zset (only checked: the decision's contact, applied in the
--         same round trip, writes it), 7 profile hash (only read: whether the customer
--         has any activity of their own), 8 (optional) the trigger's claim (own.lua's):
--         deleted once the decision is marked decided
-- ARGV: 1 context JSON, 2 context ttl (s), 3 decision ts (ms), 4 decision id,
--       5 decisions kept, 6 trigger fact id ('' for none), 7 now (ms), 8 key ttl (s),
--       9 live lag (ms): a decision at most this old counts as made now (apply.lua's),
--       10 this context's own ttl (s), at most ARGV[2] (a decision that offered nothing
--       teaches nothing: only the profile shows it), 11 contact-only ttl (s): the key
--       ttl of a customer with no activity of their own (apply.lua's), 12 (optional)
--       the id of the contact the decision made, when that contact had ceilings: it was
--       sent before this, in the same round trip ('' for none),
--       13 (optional) how the trigger is marked: 'd' decided (the default: the decision
--       was emitted), or 'r' recorded (a worker's, before it emits it: a replay of the
--       trigger sends this decision again rather than deciding anew), marked 'u:' (for
--       unsent: no fact id starts so) until a mark 'd' replaces it ('' for 'd'),
--       14 (optional) stranger ttl (s): ARGV[11] for a stranger, whom Moments knows only
--       by its own decisions (no field of strangers.py KNOWN_BY in their profile, and a
--       decision with no trigger), and the longest their context is kept: an outcome is
--       learned within it
-- Returns 1 kept, 0 the customer was erased, 2 its contact was refused (over one of its
-- ceilings): the decision is not made, and nothing of it is kept.
if redis.call('EXISTS', KEYS[4]) == 1 then return 0 end
-- Redis does not undo a script's writes when it fails: a key of another type is found
-- before the first write (a context kept out of the index would escape erasure), and
-- the decision is refused when its contact would fail (kept, it would be one the
-- customer was never shown).
for i, want in pairs({[1] = 'string', [2] = 'zset', [3] = 'zset', [5] = 'zset',
                      [6] = 'zset', [7] = 'hash'}) do
  local found = redis.call('TYPE', KEYS[i])['ok']
  if found ~= 'none' and found ~= want then
    return redis.error_reply('WRONGTYPE key ' .. i .. ' of the decision holds a ' .. found)
  end
end
if ARGV[12] and ARGV[12] ~= '' and not redis.call('ZSCORE', KEYS[3], ARGV[12]) then
  return 2
end
-- A stranger (apply.lua's), asked for over HTTP (a worker's decision answers a
-- touchpoint: its customer is no stranger, though a rebuild may replay the decision
-- without it): nothing of theirs is kept beyond the stranger ttl. The decision's own
-- contact was applied before this, in the same round trip (decision_log.py): an offer
-- it made by email, text or call makes its customer known from the first one.
local stranger = false
if ARGV[14] and ARGV[14] ~= '' and ARGV[6] == ''
    and redis.call('HEXISTS', KEYS[7], 'n') == 0 then
  local known = redis.call('HMGET', KEYS[7], 'n', 'email:bounced', 'email:delivered',
                           'email:sent', 'consent:email', 'consent:sms', 'consent:call',
                           'consent:web', 'subscribed:email', 'shown:email', 'shown:sms',
                           'shown:call')  -- strangers.py KNOWN_BY
  stranger = true
  for i = 1, 12 do if known[i] then stranger = false end end
end
-- The context's lifetime counts from the decision (never longer than its ttl, should
-- the decision's clock run ahead of this one; a stranger's, than the stranger ttl).
local age_s = math.floor((tonumber(ARGV[7]) - tonumber(ARGV[3])) / 1000)
local own_s = math.min(tonumber(ARGV[10]), tonumber(ARGV[2]))
if stranger then own_s = math.min(own_s, tonumber(ARGV[14])) end
local left_s = math.min(own_s, own_s - age_s)
-- The customer's keys live the key ttl from the decision's time, as apply.lua has them
-- live from the touchpoint's: a replayed decision renews an expiry only as far as its
-- time gives, never shortening one (a rebuild must not keep a quiet customer's ids 400
-- days more); one dated the ttl or longer ago keeps nothing but its mark below.
-- The recent decisions of a customer with no activity of their own (a visitor Moments
-- was only asked to decide for) live the contact-only ttl from it instead, or as long
-- as their profile where that is longer (apply.lua's rule).
local age_ms = tonumber(ARGV[7]) - tonumber(ARGV[3])
local lag_ms = math.max(0, age_ms - tonumber(ARGV[9] or '0'))
local life_ms = tonumber(ARGV[8]) * 1000 - lag_ms
local listed_ms = life_ms
local profile_ms = redis.call('PTTL', KEYS[7])
if ARGV[11] and redis.call('HEXISTS', KEYS[7], 'n') == 0 then
  local short_s = tonumber(ARGV[11])
  if stranger then short_s = math.min(short_s, tonumber(ARGV[14])) end
  local short_ms = short_s * 1000 - lag_ms
  listed_ms = math.min(life_ms, math.max(short_ms, profile_ms))
elseif profile_ms > 0 then
  -- a customer with activity of their own: a decision is not theirs, and renews nothing
  -- of them past their profile (an email service asking for one who left long ago)
  listed_ms = math.min(life_ms, profile_ms)
end
if life_ms > 0 then
  if listed_ms > 0 then
    redis.call('ZADD', KEYS[2], ARGV[3], ARGV[4])
    redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -(tonumber(ARGV[5]) + 1))
    local left = redis.call('PTTL', KEYS[2])
    if left == -1 or left < listed_ms then redis.call('PEXPIRE', KEYS[2], listed_ms) end
  end
  -- Ids leave the index an hour after their contexts expire: clocks of other processes
  -- may be a little ahead of the one that stored them. A stranger's index lives an hour
  -- beyond the stranger ttl (never shortened: a context kept longer, by an older
  -- Moments, stays in it), and is trimmed as anyone's.
  local kept_s = tonumber(ARGV[2]) + 3600
  if left_s > 0 then
    redis.call('SET', KEYS[1], ARGV[1], 'EX', left_s, 'NX')
    redis.call('ZADD', KEYS[5], ARGV[7], ARGV[4])
  end
  redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf',
             '(' .. string.format('%d', tonumber(ARGV[7]) - kept_s * 1000))
  if stranger then
    local indexed_ms = (math.min(tonumber(ARGV[2]), tonumber(ARGV[14])) + 3600) * 1000
    local left = redis.call('PTTL', KEYS[5])
    if left == -1 or (left >= 0 and left < indexed_ms) then
      redis.call('PEXPIRE', KEYS[5], indexed_ms)
    end
  else
    redis.call('EXPIRE', KEYS[5], kept_s)
  end
end
-- the trigger is marked decided in a seen set that exists, or one made here (a decision
-- replayed without its touchpoint), which expires as one apply.lua makes does
if ARGV[6] ~= '' and (life_ms > 0 or redis.call('EXISTS', KEYS[3]) == 1) then
  if ARGV[13] == 'r' then
    if not redis.call('ZSCORE', KEYS[3], 'd:' .. ARGV[6]) then
      redis.call('ZADD', KEYS[3], ARGV[7], 'u:' .. ARGV[6])
    end
  else
    redis.call('ZADD', KEYS[3], ARGV[7], 'd:' .. ARGV[6])
    redis.call('ZREM', KEYS[3], 'u:' .. ARGV[6])
    if KEYS[8] then redis.call('DEL', KEYS[8]) end
  end
  if redis.call('PTTL', KEYS[3]) == -1 then redis.call('PEXPIRE', KEYS[3], life_ms) end
end
return 1
