-- Erase one customer: delete every key, the contexts of every decision the recent list
-- or the context index names (read here, so that a decision stored a moment before is
-- erased too), then leave a tombstone so that replays and late events cannot bring the
-- profile back. Context keys are the customer's (same hash tag, same slot), named by
-- prefix and decision id.
-- What an erasure removed is kept beside the tombstone, as long as it: an attempt whose
-- caller was told to try again (the erasure record could not be written) removed the
-- keys, and the retry must still tell of them; as must the time of the first erasure.
-- A full Redis (maxmemory, noeviction) still runs it: Redis checks for room only before
-- a script's first write, and the first here is a DEL. Give this script no flags line
-- (`#!lua flags=...`) without allow-oom (tests/integration/test_full_redis.py).
-- The customer's withdrawals (consent withdrawn on a channel, an email unsubscribe) are
-- kept too, beside the tombstone and as long (a suppression list): their names alone
-- (the opt-outs hash's fields that said '0'), no date, no value, no id; so that an
-- erased customer who had said "stop" is not contacted as a stranger would be.
-- KEYS: the customer's keys, then the tombstone, then what the erasure removed, then the
--       withdrawals kept.
-- ARGV: 1 tombstone ttl (ms: what is left of the block), 2 erased-at (ms), 3 context
--       key prefix, 4 'live' (an erasure made now: the erasure already recorded, if
--       any, was the first, whatever this process's clock says) or 'replayed' (one made
--       at ARGV[2], by `moments rebuild`: the first if older than the one recorded),
--       5 position in KEYS of the opt-outs hash, 6 withdrawals to keep besides those it
--       holds (space-separated field names: those an erasure record carries, replayed),
--       7.. positions in KEYS of the zsets that name decisions.
-- Returns, per key before the tombstone, 1 if this erasure or an earlier one removed it,
-- then the contexts they deleted, then when the customer was first erased (ms), then
-- the withdrawals kept (this erasure's and an earlier one's).
local tomb, told, kept = KEYS[#KEYS - 2], KEYS[#KEYS - 1], KEYS[#KEYS]
local n = #KEYS - 3
-- feature_store/facts.py WITHDRAWAL_FIELDS, as lua/apply.lua names them
local withdrawal = {'consent:email', 'consent:sms', 'consent:call', 'consent:web',
                    'subscribed:email'}
local is_withdrawal = {}
for _, f in ipairs(withdrawal) do is_withdrawal[f] = true end
local keep = {}
for f in string.gmatch(ARGV[6], '%S+') do
  if is_withdrawal[f] then keep[f] = true end
end
-- read before the deletes; a key of another type (corrupted) holds none
local optouts = KEYS[tonumber(ARGV[5])]
if redis.call('TYPE', optouts)['ok'] == 'hash' then
  for _, f in ipairs(withdrawal) do
    if redis.call('HGET', optouts, f) == '0' then keep[f] = true end
  end
end
local named, contexts = {}, 0
for i = 7, #ARGV do
  local index = KEYS[tonumber(ARGV[i])]
  -- a key of another type (corrupted) names no decision; it is deleted below all the
  -- same, where reading it would fail the erasure every time
  if redis.call('TYPE', index)['ok'] == 'zset' then
    for _, id in ipairs(redis.call('ZRANGE', index, 0, -1)) do
      if not named[id] then
        named[id] = true
        contexts = contexts + redis.call('DEL', ARGV[3] .. id)
      end
    end
  end
end
local removed = {}
for i = 1, n do
  removed[i] = redis.call('DEL', KEYS[i])
end
-- the tombstone and the record of what was removed are strings: one of another type
-- (corrupted) is taken for none and written over, where reading it would fail the
-- erasure after its deletes, every time, leaving the customer unblocked
for _, key in ipairs({tomb, told}) do
  local found = redis.call('TYPE', key)['ok']
  if found ~= 'none' and found ~= 'string' then redis.call('DEL', key) end
end
-- the withdrawals kept by an earlier erasure stay kept (a set: one of another type is
-- taken for none, as above)
local found = redis.call('TYPE', kept)['ok']
if found == 'set' then
  for _, f in ipairs(redis.call('SMEMBERS', kept)) do
    if is_withdrawal[f] then keep[f] = true end
  end
elseif found ~= 'none' then
  redis.call('DEL', kept)
end
local before = redis.call('GET', told)  -- '<a 0/1 per key>|<contexts>'
if before then
  local flags, count = string.match(before, '^([01]*)|(%d+)$')
  if flags then
    for i = 1, math.min(#flags, n) do
      if string.sub(flags, i, i) == '1' then removed[i] = 1 end
    end
    contexts = contexts + tonumber(count)
  end
end
-- a block already longer (a later erasure, replayed first) is kept as long as it is; the
-- time of the first erasure stands, an older one replayed now being the first (a live
-- one never is: two processes erasing at once, or a retry, on clocks apart, moved it)
-- A tombstone that holds no time a date can hold (a tool's, a bug's: no number, or
-- before 1970 or past year 9999) tells no first erasure: it is written over, as if none
-- were there, rather than returned (the receipt could not say when, and the erasure's
-- record would not be published) or kept with no end.
local at = ARGV[2]
local first = tonumber(redis.call('GET', tomb) or '')
if first and (first < 0 or first > 253402300799999 or first ~= math.floor(first)) then
  first = nil
end
if first and (ARGV[4] == 'live' or first < tonumber(at)) then
  at = string.format('%d', first)
end
local left = redis.call('PTTL', tomb)
if left == -2 or first == nil or (left >= 0 and left < tonumber(ARGV[1])) then
  redis.call('SET', tomb, at, 'PX', ARGV[1])
elseif first == nil or tonumber(at) < first then
  redis.call('SET', tomb, at, 'KEEPTTL')
end
local flags = {}
for i = 1, n do flags[i] = removed[i] > 0 and '1' or '0' end
local record = table.concat(flags) .. '|' .. string.format('%d', contexts)
local lasts = redis.call('PTTL', tomb)
if lasts > 0 then
  redis.call('SET', told, record, 'PX', lasts)
else
  redis.call('SET', told, record)
end
local withdrawals = {}
for _, f in ipairs(withdrawal) do
  if keep[f] then table.insert(withdrawals, f) end
end
if #withdrawals > 0 then
  redis.call('SADD', kept, unpack(withdrawals))
  if lasts > 0 then redis.call('PEXPIRE', kept, lasts) else redis.call('PERSIST', kept) end
end
removed[n + 1] = contexts
removed[n + 2] = at
removed[n + 3] = withdrawals
return removed
