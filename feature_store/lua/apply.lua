-- Apply one fact (a touchpoint, or a contact Moments made) to one customer,
-- atomically and at most once. The pure mirror is feature_store/reference.py.
-- KEYS: 1 profile hash, 2 windows hash, 3 seen-facts zset, 4 recent-touchpoints zset,
--       5 tombstone (set when the customer was erased), 6 opt-outs hash (the
--       withdrawals, kept without expiry while there are any), 7 contacts hash (the
--       windows of Moments' own contacts; KEYS[2] too for a contact), 8 the withdrawals
--       kept beside the tombstone (erase.lua)
-- ARGV: 1 fact id, 2 fact ts (ms), 3 now (ms), 4 ttl (s), 5 dedupe horizon (ms),
--       6 recent entry ('' for none), 7 recent length,
--       8 the resolutions the fact writes to, as a JSON array of [name, bucket size ms,
--         buckets kept] (only these move their buckets along; empty for a fact
--         without windowed updates),
--       9 the updates as a JSON array of [op, field, value] triples
--       (JSON keeps the call down to a few arguments, cheap to send),
--       10 live lag (ms): a fact dated at most this long before now counts as happening
--         now (a live event, one a lagging worker or a skewed clock dates a little
--         early); an older one (a replay, `moments rebuild`) counts from its own ts,
--       11 contact-only ttl (s): how long the keys of a customer with no activity of
--         their own live after the latest offer shown or email sent to them (see Expiry),
--       12 (a contact's, optional) the ceilings it must stay within, as JSON (below;
--         '' for none), 13 (optional) '1': for an erased customer only (a rebuild's
--         withdrawals): of one not erased, nothing is written (7; '' otherwise),
--       14 (optional) stranger ttl (s): ARGV[11] for a stranger, whom Moments knows only
--         by its own decisions (see Expiry; feature_store/strangers.py)
-- Ops: incr | tally (an incr that makes a new field only while fewer than its prefix's
--      room were made, counted in the room's profile field: ROOMS below, rooms.py) | max | min | latest (newest ts wins, ties: smaller value; a grant in a
--      withdrawal field counts GRANT_LEAD_MS before its ts) on the profile;
--      w<name> adds to the fact's bucket at resolution <name> in the windows hash (a
--      category, cat:<name>, new to the bucket only while it counts fewer than
--      BUCKET_CATEGORY_ROOM of them, in its field 'cats').
-- ARGV 15 (optional, after 14): '1' to keep beside the fact's id the customer's newest
--      recent entry before it (the first touchpoint of a burst, facts.py mark_bursts;
--      '' or absent, as an older caller sends it: none).
-- Expiry: only the customer's own activity (a fact that counts in the activity count
-- `n`) renews the expiry of their keys; any other fact (an email the business sent,
-- delivered or bounced; an offer shown, an intervention) gives one only to a key that
-- has none (the profile's, where the customer has one), so that it keeps no one who left. The keys live the ttl from the fact's
-- time (from now for a live fact, see ARGV[10]): an older fact renews an expiry only as
-- far as its own time gives, never shortens one, so the keys expire the ttl after the
-- customer's newest activity, however the facts are replayed. A customer with no
-- activity of their own (no `n`: a visitor Moments was only asked to decide for, or
-- someone only mailed) has their profile and the fact's windows kept the shorter
-- contact-only ttl from each such fact (an offer shown, an email sent) instead, never
-- shortened, or the live lag where that is up already (a replay: the facts replayed
-- after it, such as their first activity, still find it); their first activity gives
-- the whole ttl. A stranger (none of strangers.py KNOWN_BY in their profile: no
-- activity, no email the business sent, no withdrawal, no offer Moments made them by
-- email, text or call, this fact's included; a web recommendation asked for an id no
-- touchpoint named) has them kept the stranger ttl (ARGV[14]) instead, their seen ids
-- too (they hold only Moments' own contacts). A fact dated the ttl or
-- longer ago is not applied (a rebuild must not bring back what had expired): only a
-- withdrawal or grant it carries is kept (as live, where withdrawals outlive the
-- profile). The fact's id is remembered for the dedupe horizon at least (the first
-- touchpoint of a burst's with the newest recent entry before it, ARGV[15], for
-- before.lua). A fact whose id
-- was seen before is not applied again, but for a withdrawal it carries (consent
-- withdrawn, an unsubscribe: its fields alone, ranked by their time as any), so that a
-- withdrawal sent under an id used before (a producer that keys "subscribe" and
-- "unsubscribe" alike) is honoured however it comes, and a grant under one is not.
-- Returns 1 applied, 0 duplicate, 2 duplicate whose decision was already emitted,
-- 3 the customer was erased (nothing is written but a withdrawal or unsubscribe the
-- fact carries, kept beside the tombstone as erase.lua keeps them), 4 dated the ttl or longer ago (not
-- applied, but for its withdrawals; a duplicate that old is 4 too: nothing to decide on),
-- 5 a contact over one of its ceilings (ARGV[12]: nothing is written), 6 duplicate whose
-- decision was recorded but is not known to have been emitted (decision.lua's mark 'u:'),
-- 7 not erased, and the fact was for the erased only (ARGV[13]: nothing is written).
local profile, windows, seen, recent = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
-- The contacts' count per UTC day of those recorded with their quarter-hour bucket
-- (in_quarters:<day>), of these metrics (contact_days.py QUARTERED, QUARTERED_METRICS)
local QUARTERED = 'in_quarters:'
local QUARTERED_METRICS = {'shown:web', 'shown:email', 'shown:sms', 'shown:call'}
local IS_QUARTERED = {['shown:web'] = true, ['shown:email'] = true, ['shown:sms'] = true,
                      ['shown:call'] = true}
local STALE_QUARTERED_DAYS = 7  -- contact_days.py STALE_QUARTERED_DAYS
if redis.call('EXISTS', KEYS[5]) == 1 then
  -- erased: a withdrawal still counts if it was sent at most the live lag (ARGV[10])
  -- before the first erasure (the tombstone's value), or after it ("stop emailing me"
  -- then "forget me", applied after the erasure by a worker behind), kept beside the
  -- tombstone and as long; an older one (a replay of what the erasure already weighed)
  -- changes nothing. One within the lag that a grant took back before the erasure is
  -- kept all the same: an id that asked to be forgotten is suppressed the more. A key
  -- of another type is left alone.
  local kept = KEYS[8]
  local first = redis.pcall('GET', KEYS[5])
  first = type(first) == 'string' and tonumber(first) or nil
  local found = kept and first and tonumber(ARGV[2]) >= first - tonumber(ARGV[10])
    and redis.call('TYPE', kept)['ok']
  if found == 'set' or found == 'none' then
    local added = 0
    for _, update in ipairs(cjson.decode(ARGV[9])) do
      local field = update[2]
      if update[1] == 'latest' and update[3] == '0'
          and (string.match(field, '^consent:%a+$') or field == 'subscribed:email') then
        added = added + redis.call('SADD', kept, field)
      end
    end
    if added > 0 then
      local lasts = redis.call('PTTL', KEYS[5])
      if lasts > 0 then redis.call('PEXPIRE', kept, lasts) else redis.call('PERSIST', kept) end
    end
  end
  return 3
end
if ARGV[13] == '1' then return 7 end
local fact_id = ARGV[1]
local ts = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local ttl = tonumber(ARGV[4])
local ttl_ms = ttl * 1000
-- The fields of a withdrawal (feature_store/facts.py WITHDRAWAL_FIELDS), with their stamps.
local withdrawal = {'consent:email', 'consent:sms', 'consent:call', 'consent:web',
                    'subscribed:email'}
local is_withdrawal = {}
for _, f in ipairs(withdrawal) do is_withdrawal[f] = true end
-- A grant in a withdrawal field ranks GRANT_LEAD_MS before its ts (facts.py says why).
local GRANT_LEAD_MS = 900000
local function rank(field, value, stamp)
  if value == '1' and is_withdrawal[field] then return stamp - GRANT_LEAD_MS end
  return stamp
end
-- Whether string a sorts before b byte by byte (by code point, as Python compares them in
-- reference.py): Lua's `<` follows the server's locale (LC_COLLATE, which Redis takes
-- from its environment), so that two servers could break one tie apart.
local function bytes_before(a, b)
  for i = 1, math.min(#a, #b) do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return #a < #b
end
-- 'latest': the newest ts wins (ties: the smaller value); a grant's ts is its rank
local function latest(hash, field, value)
  local current_ts = tonumber(redis.call('HGET', hash, field .. '@'))
  local newer = current_ts == nil
  if not newer then
    local current = redis.call('HGET', hash, field) or value
    local mine, theirs = rank(field, value, ts), rank(field, current, current_ts)
    newer = mine > theirs or (mine == theirs and bytes_before(value, current))
  end
  if newer then redis.call('HSET', hash, field, value, field .. '@', ARGV[2]) end
end
-- A withdrawal is kept until the customer grants again, however long they stay away:
-- its fields (and stamps) are copied from `hash` (the profile, or the opt-outs hash
-- itself) to the opt-outs hash, which does not expire (the profile does; erasure removes
-- both). No withdrawal left: no opt-outs hash.
local function keep_withdrawals(hash)
  local optouts = {}
  for _, f in ipairs(withdrawal) do
    if redis.call('HGET', hash, f) == '0' then
      for _, x in ipairs({f, '0', f .. '@', redis.call('HGET', hash, f .. '@') or '0'}) do
        table.insert(optouts, x)
      end
    end
  end
  -- (a count that is no number, corrupted, counts none: this runs after the fact was
  -- remembered, where an error would leave it half applied and taken for done)
  if hash == profile and not redis.call('HGET', profile, 'subscribed:email')
      and (tonumber(redis.call('HGET', profile, 'email:unsubscribed') or '0') or 0) > 0 then
    -- unsubscribed before Moments kept the flag: held the same, with no date to compare
    for _, x in ipairs({'subscribed:email', '0', 'subscribed:email@', '0'}) do
      table.insert(optouts, x)
    end
  end
  redis.call('DEL', KEYS[6])
  if #optouts > 0 then redis.call('HSET', KEYS[6], unpack(optouts)) end
end
-- Applies the fact's consent updates `{field, value}` alone: to the profile, or, expired,
-- to the opt-outs hash; and keeps the withdrawals among them.
local function apply_consent(changes)
  local target = profile
  if redis.call('EXISTS', profile) == 0 then target = KEYS[6] end
  for _, change in ipairs(changes) do latest(target, change[1], change[2]) end
  keep_withdrawals(target)
end
if redis.call('ZSCORE', seen, fact_id) then
  -- seen before, and now too old to decide on, as it was the first time (its mark 'x:':
  -- a copy dated later, a device's clock set right, is not applied either) or is since
  local status = 0
  if now - ts >= ttl_ms or redis.call('ZSCORE', seen, 'x:' .. fact_id) then status = 4
  elseif redis.call('ZSCORE', seen, 'd:' .. fact_id) then status = 2
  elseif redis.call('ZSCORE', seen, 'u:' .. fact_id) then status = 6 end
  -- A withdrawal is applied all the same (an id used again: a producer that keys
  -- "subscribe" and "unsubscribe" alike; the API's own write of it, w:<event_id>): its
  -- fields alone, which rank by their time, so that the same one again changes nothing.
  -- Nothing else of the fact is applied again, and a grant under a used id is not.
  local withdrawn = {}
  for _, update in ipairs(cjson.decode(ARGV[9])) do
    if update[1] == 'latest' and is_withdrawal[update[2]] and update[3] == '0' then
      withdrawn[#withdrawn + 1] = {update[2], '0'}
    end
  end
  if #withdrawn > 0 then
    for _, i in ipairs({1, 6}) do
      local found = redis.call('TYPE', KEYS[i])['ok']
      if found ~= 'none' and found ~= 'hash' then
        return redis.error_reply('WRONGTYPE key ' .. i .. ' of the fact holds a ' .. found)
      end
    end
    apply_consent(withdrawn)
  end
  return status
end
-- Redis does not undo a script's writes when it fails: whatever can fail is checked
-- here, before the first write (a key of another type, an update it does not know, a
-- counter it cannot add to), and the fact is remembered after its updates, so that one
-- failing on the way fails again when retried, to be set aside, not taken for done.
for i, want in pairs({[1] = 'hash', [2] = 'hash', [3] = 'zset', [4] = 'zset',
                      [6] = 'hash', [7] = 'hash'}) do
  local found = redis.call('TYPE', KEYS[i])['ok']
  if found ~= 'none' and found ~= want then
    return redis.error_reply('WRONGTYPE key ' .. i .. ' of the fact holds a ' .. found)
  end
end
local resolutions, updates = cjson.decode(ARGV[8]), cjson.decode(ARGV[9])
local size_of, keep_of = {}, {}
for _, resolution in ipairs(resolutions) do
  size_of[resolution[1]], keep_of[resolution[1]] = resolution[2], resolution[3]
end
-- a windowed update's field: the fact's bucket at resolution `name`
local function window_field(name, field)
  return name .. string.format('%d', math.floor(ts / size_of[name])) .. '|' .. field
end
-- the rooms of 'tally', by the prefix of its field (up to the first ':'): the profile
-- field counting the fields of that prefix made, and how many it makes at most
-- (rooms.py ROOMS: categories; the spend of purchases in a currency with no rate)
local ROOMS = {['cat:'] = {'tallied', 512}, ['spend_unconverted:'] = {'unconverted_currencies', 16}}
local function room_of(field)
  local prefix = string.match(field, '^[^:]+:')
  return prefix and ROOMS[prefix], prefix
end
-- a counter that does not hold an integer, or that the update would take past what
-- Redis holds (HINCRBY refuses it), fails the fact here, before any write
-- (as HINCRBY reads one: digits with no sign but a leading minus, no leading zero, no
-- spaces, no point or exponent; tonumber takes '1.0', '1e3', '0x10' and ' 5')
local function addable(hash, field, value)
  local current = redis.call('HGET', hash, field) or '0'
  if current ~= '0' and not string.match(current, '^%-?[1-9]%d*$') then
    return redis.error_reply('ERR counter ' .. field .. ' does not hold an integer')
  end
  local n = tonumber(current)
  if math.abs(n + tonumber(value)) >= 9.2e18 then
    return redis.error_reply('ERR counter ' .. field .. ' would overflow')
  end
end
for _, update in ipairs(updates) do
  local op, failed = update[1], nil
  if string.sub(op, 1, 1) == 'w' then
    if not size_of[string.sub(op, 2)] then
      return redis.error_reply('unknown resolution ' .. string.sub(op, 2))
    end
    failed = addable(windows, window_field(string.sub(op, 2), update[2]), update[3])
  elseif op == 'incr' then
    failed = addable(profile, update[2], update[3])
  elseif op == 'tally' then
    local room = room_of(update[2])
    if not room then return redis.error_reply('no room for tally ' .. update[2]) end
    failed = addable(profile, update[2], update[3]) or addable(profile, room[1], '1')
  elseif op ~= 'max' and op ~= 'min' and op ~= 'latest' then
    return redis.error_reply('unknown update op ' .. op)
  end
  if failed then return failed end
end
-- A contact with ceilings (ARGV[12], JSON {day: its UTC day, quarter: the size of the
-- quarter-hour buckets (ms), counts: [[metrics, from, cap]], since: [[profile field,
-- latest ms]], withdrawn: [withdrawal field]}, facts.py ContactCeilings, fact_calls.py
-- _ceilings_json) is refused when a withdrawn field reads '0' (consent withdrawn since
-- the decision's read), or when the
-- contact counts of the metrics from `from` (in UTC ms, found in Python: a day's count
-- from the customer's local midnight, a week's from the start of the UTC day its first
-- local midnight falls in, contact_days.py counted_from_ms) up to the end of the day after its
-- own (a contact another process's clock, running ahead, dated past midnight) already
-- reach a cap, or a field holds a time after its latest (a cool-down): nothing is
-- written, and the fact is not remembered. A count sums the daily buckets from the UTC
-- day `from` falls in, less what that day's quarter-hour buckets hold before `from`, per
-- metric and never more than the day holds (contact_days.py contacts_from: a contact
-- with no quarter-hour bucket, recorded before them, counts with its whole day). Where
-- fewer of that day's quarters follow `from` than precede it (a midnight late in the UTC
-- day: Europe's), a metric of QUARTERED counts the day's quarters from `from` on instead,
-- when the day is whole: every contact of it is in its quarter (below, and
-- contact_days.py quartered_days).
-- Checked here, with the write, so that processes deciding for the customer at once
-- cannot take a cap past its limit between them.
if ARGV[12] and ARGV[12] ~= '' then
  local ceilings = cjson.decode(ARGV[12])
  local day_ms, quarter = 86400000, ceilings.quarter
  -- what the counts read, read once per contact: a day's count of a metric (field ->
  -- count), its first day's quarters before or from a local midnight (metric<midnight or
  -- metric>midnight -> sum), and whether a day is whole (day -> boolean)
  local daily, quarter_sums, whole_of = {}, {}, {}
  local function day_count(field)
    local n = daily[field]
    if n == nil then
      n = tonumber(redis.call('HGET', windows, field)) or 0
      daily[field] = n
    end
    return n
  end
  -- the sum of a metric's quarters of UTC day `first` before `from` (after: from it on)
  local function quarters_of(metric, first, from, after)
    local memo = metric .. (after and '>' or '<') .. string.format('%d', from)
    local sum = quarter_sums[memo]
    if sum == nil then
      local fields = {}
      local low, start = first * (day_ms / quarter), math.floor(from / quarter)
      local a, b = low, start - 1
      if after then a, b = start, low + day_ms / quarter - 1 end
      for q = a, b do
        fields[#fields + 1] = 'q' .. string.format('%d', q) .. '|' .. metric
      end
      sum = 0
      if #fields > 0 then
        for _, n in ipairs(redis.call('HMGET', windows, unpack(fields))) do
          sum = sum + (tonumber(n) or 0)
        end
      end
      quarter_sums[memo] = sum
    end
    return sum
  end
  -- whether every contact of UTC day `day` (of the QUARTERED metrics) is in its quarter:
  -- the day's count of those recorded with one equals its daily buckets', and the day is
  -- the newest quarter's or the one before (its quarters all kept: a prune takes those
  -- 288 before the newest). An older Moments counts none: its days are not whole.
  local function whole(day)
    local found = whole_of[day]
    if found == nil then
      local d = 'd' .. string.format('%d', day) .. '|'
      local got = redis.call('HMGET', windows, QUARTERED .. string.format('%d', day), 'max|q',
                             d .. QUARTERED_METRICS[1], d .. QUARTERED_METRICS[2],
                             d .. QUARTERED_METRICS[3], d .. QUARTERED_METRICS[4])
      local counted = got[1] and string.match(got[1], '^%d+$') and tonumber(got[1])
      local newest = got[2] and string.match(got[2], '^%d+$') and tonumber(got[2])
      found = false
      if counted and newest and day >= math.floor(newest / (day_ms / quarter)) - 1 then
        local sum = 0
        for i = 3, 6 do sum = sum + (tonumber(got[i]) or 0) end
        found = sum == counted
      end
      whole_of[day] = found
    end
    return found
  end
  for _, count in ipairs(ceilings.counts) do
    local metrics, from, cap, total = count[1], count[2], count[3], 0
    local first = math.floor(from / day_ms)
    local head = {}  -- the first day's count of each metric
    for d = first, ceilings.day + 1 do
      local bucket = 'd' .. string.format('%d', d) .. '|'
      for _, metric in ipairs(metrics) do
        local n = day_count(bucket .. metric)
        if d == first then head[metric] = n end
        total = total + n
      end
    end
    -- the quarters only lower a count: read only while it still reaches the cap (a web
    -- count far from its cap reads none), and from the shorter side of the midnight when
    -- the day is whole (a local midnight late in the UTC day, as in Europe, has up to 95
    -- quarters before it)
    local low, start = first * (day_ms / quarter), math.floor(from / quarter)
    local later = low + day_ms / quarter - start < start - low
    for _, metric in ipairs(metrics) do
      if total < cap then break end
      local n = head[metric]
      if n > 0 and from > first * day_ms then
        if later and IS_QUARTERED[metric] and whole(first) then
          total = total - n + math.min(quarters_of(metric, first, from, true), n)
        else
          total = total - math.min(quarters_of(metric, first, from, false), n)
        end
      end
    end
    if total >= cap then return 5 end
  end
  for _, since in ipairs(ceilings.since) do
    local last = tonumber(redis.call('HGET', profile, since[1]))
    if last and last > since[2] then return 5 end
  end
  -- a withdrawal applied since the decision's read (in the profile, else in the opt-outs
  -- kept beside it): the contact is refused, and decided again
  for _, field in ipairs(ceilings.withdrawn or {}) do
    local value = redis.call('HGET', profile, field)
    if not value then value = redis.call('HGET', KEYS[6], field) end
    if value == '0' then return 5 end
  end
end
-- a contact's quarter on a QUARTERED metric adds to its day's count of those (below;
-- checked after the ceilings, which write nothing, so that a refused contact reads none)
local quartered_field = nil
for _, update in ipairs(updates) do
  if update[1] == 'wq' and IS_QUARTERED[update[2]] and size_of['q'] then
    quartered_field = QUARTERED .. string.format('%d', math.floor(ts / 86400000))
    local failed = addable(windows, quartered_field, update[3])
    if failed then return failed end
  end
end
local BUCKET_CATEGORY_ROOM = 32  -- facts.py BUCKET_CATEGORY_ROOM
local function remember()  -- the fact's id, for the dedupe horizon at least
  -- added first: the set never empties, so it keeps its expiry (an emptied key would go,
  -- and come back with none)
  redis.call('ZADD', seen, ARGV[3], fact_id)
  redis.call('ZREMRANGEBYSCORE', seen, '-inf', '(' .. string.format('%d', now - tonumber(ARGV[5])))
end
local age = now - ts
if age >= ttl_ms then  -- its profile would have expired: only its withdrawals are kept
  local changes = {}
  for _, update in ipairs(updates) do
    if update[1] == 'latest' and is_withdrawal[update[2]] then
      changes[#changes + 1] = {update[2], update[3]}
    end
  end
  apply_consent(changes)
  remember()
  redis.call('ZADD', seen, ARGV[3], 'x:' .. fact_id)
  if redis.call('PTTL', seen) < tonumber(ARGV[5]) then
    redis.call('PEXPIRE', seen, tonumber(ARGV[5]))
  end
  return 4
end
-- what the keys live from this fact: the ttl from its time (from now when live)
local life = ttl_ms - math.max(0, age - tonumber(ARGV[10]))
if redis.call('EXISTS', profile) == 0 then  -- expired (or new): the withdrawals come back
  local kept = redis.call('HGETALL', KEYS[6])
  if #kept > 0 then redis.call('HSET', profile, unpack(kept)) end
end

-- Windows: each resolution keeps its newest `keep` buckets (by fact ts, not arrival), and
-- up to `every` more between prunes (facts.py Resolution.prune_every).
-- A fact dated ahead of the clock (within the skew allowed) is counted in its bucket but
-- moves the window no further than now, so that it prunes no bucket still in a window.
local bucket, live_from, prune_to = {}, {}, {}
local prune = false
for _, resolution in ipairs(resolutions) do
  local name, size, keep = resolution[1], resolution[2], resolution[3]
  local every = resolution[4] or 1  -- pruned when the newest moves into another run of these
  local b = math.floor(ts / size)
  local head = math.min(b, math.floor(now / size))
  local newest = tonumber(redis.call('HGET', windows, 'max|' .. name))
  if newest == nil or head > newest then
    redis.call('HSET', windows, 'max|' .. name, string.format('%d', head))
    if newest ~= nil and math.floor(head / every) > math.floor(newest / every) then
      prune_to[name] = head - keep
      prune = true
    end
    newest = head
  end
  bucket[name] = b
  live_from[name] = newest - keep + 1
end
-- The contacts' daily counts of each offer shown (d<day>|offer:<offer>) are kept for the
-- 15 days ending with the newest (facts.py OFFER_KEPT_DAYS): only a weekly cap reads
-- them. Their weekly buckets, which versions before 2026-12-06 wrote and nothing read, go
-- at the first prune.
local in_contacts = KEYS[2] == KEYS[7]
local offers_to = nil
if in_contacts and prune_to['d'] then offers_to = prune_to['d'] + keep_of['d'] - 15 end
-- the days whose count of contacts in their quarters is kept: the newest quarter's and
-- the one before (contact_days.py QUARTERED); older ones go when the quarters are pruned
local quartered_from = nil
if size_of['q'] then
  quartered_from = math.floor((live_from['q'] + keep_of['q'] - 1) * size_of['q'] / 86400000) - 1
end
if prune then
  for _, f in ipairs(redis.call('HKEYS', windows)) do
    local name, idx, metric = string.match(f, '^(%a)(%d+)|(.*)$')
    if name then
      idx = tonumber(idx)
      if (prune_to[name] and idx <= prune_to[name]) or (in_contacts and name == 'k')
          or (name == 'd' and offers_to and idx <= offers_to
              and string.sub(metric, 1, 6) == 'offer:') then
        redis.call('HDEL', windows, f)
      end
    elseif prune_to['q'] then
      local day = string.match(f, '^' .. QUARTERED .. '(%d+)$')
      if day and tonumber(day) < quartered_from then redis.call('HDEL', windows, f) end
    end
  end
end
-- When each offer was last shown (profile fields last_shown:<offer>) is kept for the 367
-- days ending with the newest day of the customer's contacts (facts.py SHOWN_KEPT_DAYS),
-- longer than any cool-down (366 days at most): an older time goes when that day moves
-- on, and is not written by a contact applied later, whatever order the facts come in.
local shown_from = nil
if KEYS[2] == KEYS[7] and live_from['d'] then
  shown_from = (live_from['d'] + keep_of['d'] - 367) * size_of['d']
  if prune_to['d'] then
    local fields = redis.call('HGETALL', profile)
    for i = 1, #fields, 2 do  -- a time is whole digits (reference.py reads them alike)
      local at = string.match(fields[i + 1], '^%-?%d+$') and tonumber(fields[i + 1])
      if at and at < shown_from and string.sub(fields[i], 1, 11) == 'last_shown:' then
        redis.call('HDEL', profile, fields[i])
      end
    end
  end
end

local activity = false  -- the customer did something (facts.py counts it in `n`)
local wrote = {}  -- what the fact added to its day and quarter ('d'/'q' .. metric -> value)
for _, update in ipairs(updates) do
  local op, field, value = update[1], update[2], update[3]
  if op == 'incr' then
    redis.call('HINCRBY', profile, field, value)
    if field == 'n' then activity = true end
  elseif op == 'tally' then
    if redis.call('HEXISTS', profile, field) == 1 then
      redis.call('HINCRBY', profile, field, value)
    else
      local room, prefix = room_of(field)  -- known: checked before the first write
      local made = redis.call('HGET', profile, room[1])
      if not made then  -- a profile from before the count: its fields of the kind, once
        made = 0
        for _, name in ipairs(redis.call('HKEYS', profile)) do
          if string.sub(name, 1, #prefix) == prefix then made = made + 1 end
        end
        redis.call('HSET', profile, room[1], made)
      end
      if tonumber(made) < room[2] then
        redis.call('HINCRBY', profile, field, value)
        redis.call('HINCRBY', profile, room[1], 1)
      end
    end
  elseif op == 'max' or op == 'min' then
    local current = tonumber(redis.call('HGET', profile, field))
    local v = tonumber(value)
    local expired = shown_from and string.match(value, '^%-?%d+$') and v < shown_from
                    and string.sub(field, 1, 11) == 'last_shown:'
    if expired then  -- see shown_from: nothing to write
    elseif current == nil or (op == 'max' and v > current) or (op == 'min' and v < current) then
      redis.call('HSET', profile, field, value)
    end
  elseif op == 'latest' then
    latest(profile, field, value)
  elseif string.sub(op, 1, 1) == 'w' then
    local name = string.sub(op, 2)  -- known: checked before the first write
    if bucket[name] >= live_from[name] then
      local wfield = window_field(name, field)
      if string.sub(field, 1, 4) ~= 'cat:' or redis.call('HEXISTS', windows, wfield) == 1 then
        redis.call('HINCRBY', windows, wfield, value)
        if (name == 'd' or name == 'q') and IS_QUARTERED[field] then
          wrote[name .. field] = value
        end
      else  -- a category new to the bucket, while the bucket has room for one
        local room = window_field(name, 'cats')
        if (tonumber(redis.call('HGET', windows, room)) or 0) < BUCKET_CATEGORY_ROOM then
          redis.call('HINCRBY', windows, wfield, value)
          redis.call('HINCRBY', windows, room, 1)
        end
      end
    end
  else
    return redis.error_reply('unknown update op ' .. op)
  end
end
-- a contact in its quarter and day alike counts in its day's quartered count, kept for
-- the newest quarter's day and the one before (a contact dated before those leaves its
-- day not whole). A day's first count drops the week's older ones: where an older
-- Moments, which prunes none, made the prunes of the days' first contacts, they would
-- pile up (nothing reads them: they are before quartered_from).
if quartered_field and math.floor(ts / 86400000) >= quartered_from then
  local fresh = nil
  for _, metric in ipairs(QUARTERED_METRICS) do
    local value = wrote['q' .. metric]
    if value and wrote['d' .. metric] == value then
      if fresh == nil then fresh = redis.call('HEXISTS', windows, quartered_field) == 0 end
      redis.call('HINCRBY', windows, quartered_field, value)
    end
  end
  if fresh then
    local stale = {}
    for day = quartered_from - STALE_QUARTERED_DAYS, quartered_from - 1 do
      stale[#stale + 1] = QUARTERED .. string.format('%d', day)
    end
    redis.call('HDEL', windows, unpack(stale))
  end
end

local recent_len = tonumber(ARGV[7])
local before = nil  -- the customer's newest recent touchpoint before this one ('' none)
if ARGV[6] ~= '' and recent_len > 0 then
  if ARGV[15] == '1' then before = redis.call('ZRANGE', recent, -1, -1)[1] or '' end
  redis.call('ZADD', recent, ARGV[2], ARGV[6])
  redis.call('ZREMRANGEBYRANK', recent, 0, -(recent_len + 1))
end
remember()
-- kept beside the fact's id, as long, for a batch read again after it was applied
-- (before.lua): a burst can push it out of the recent list, and a lapse or a return is
-- counted from it. Only when asked (ARGV[15]: the first touchpoint of a burst), so that
-- an ordinary customer's seen ids hold their ids alone. Its mark is short (no id: facts.py before_mark), so that the seen ids
-- stay a listpack: 'b:<the fact id's sha1, 8 hex>|<ms>|<kind>' ('b:<sha1>|' for none,
-- 'b:<sha1>|?' for an entry in another form).
if before then
  local told = before == '' and '' or (string.match(before, '^%-?%d+|[^|]*') or '?')
  local mark = 'b:' .. string.sub(redis.sha1hex(fact_id), 1, 8) .. '|' .. told
  redis.call('ZADD', seen, ARGV[3], mark)
end
-- renew a key's expiry: to the full ttl for a live fact (as it always was); for an
-- older one, only as far as its time gives, never shortening one (-1: none yet)
local function renew(key)
  if life >= ttl_ms then
    redis.call('PEXPIRE', key, ttl_ms)
  else
    local left = redis.call('PTTL', key)
    if left ~= -2 and (left == -1 or left < life) then redis.call('PEXPIRE', key, life) end
  end
end
if ARGV[6] ~= '' and recent_len > 0 then renew(recent) end
keep_withdrawals(profile)
local horizon = tonumber(ARGV[5])  -- how long the seen ids are kept at least
local stranger = false
if activity then
  for _, key in ipairs({profile, windows, seen, KEYS[7]}) do renew(key) end
elseif redis.call('HEXISTS', profile, 'n') == 0 then  -- no activity of their own, ever
  -- the contact-only ttl from this fact (or the profile's life, where that is longer:
  -- one kept from before); the seen ids keep the dedupe horizon, below, but a
  -- stranger's, which hold only Moments' own contacts: they go with the profile
  local short_s = tonumber(ARGV[11])
  if ARGV[14] and ARGV[14] ~= '' then
    -- (read after this fact's updates: the first offer made by email, text or call
    -- makes them known at once)
    local known = redis.call('HMGET', profile, 'n', 'email:bounced', 'email:delivered',
                             'email:sent', 'consent:email', 'consent:sms', 'consent:call',
                             'consent:web', 'subscribed:email', 'shown:email', 'shown:sms',
                             'shown:call')  -- strangers.py KNOWN_BY
    stranger = true
    for i = 1, 12 do if known[i] then stranger = false end end
    if stranger then short_s = math.min(short_s, tonumber(ARGV[14])) end
  end
  local short = short_s * 1000 - math.max(0, age - tonumber(ARGV[10]))
  -- replayed after the customer would have expired: kept the live lag only, so that a
  -- replay in the topic's order (moments rebuild) still finds it when the facts that kept
  -- it alive live (their first activity, a later email) come next, as they did live
  local given = math.max(short, redis.call('PTTL', profile))
  if given <= 0 then given = tonumber(ARGV[10]) end
  for _, key in ipairs({profile, windows}) do
    local left = redis.call('PTTL', key)
    if left ~= -2 and (left == -1 or left < given) then redis.call('PEXPIRE', key, given) end
  end
  if stranger then horizon = given end
else  -- an expiry only where there is none (-1; -2: no such key): the customer's own
  -- lifetime (the profile's) where they have one, so that the order facts come in
  -- does not matter; else the fact's
  local own = redis.call('PTTL', profile)
  local given = own > 0 and own or life
  for _, key in ipairs({profile, windows, seen}) do
    if redis.call('PTTL', key) == -1 then redis.call('PEXPIRE', key, given) end
  end
end
if redis.call('PTTL', seen) < horizon then redis.call('PEXPIRE', seen, horizon) end
return 1
