-- A customer's newest recent touchpoint as it was before a batch of their touchpoints
-- was applied (store.py FeatureStore.apply): the recent list's newest entry, or, once
-- the batch's first touchpoint of theirs was applied (a batch read again after a worker
-- applied it and stopped, or whose apply's replies were lost), the one apply.lua kept
-- beside that touchpoint's id when it applied it (its mark 'b:', facts.py before_mark),
-- where it kept one: for the first touchpoint of a burst (at least the recent list's
-- length of theirs in the batch, facts.py mark_bursts), whose own touchpoints may have
-- pushed it out of the list since. A smaller batch's leave it in the list. The mark holds no event id: the list's entry where it is still there, else the
-- entry with none. One whose decision went out (a copy sent again later: 'd:') or that
-- was too old to apply ('x:') reads the list, as does one applied by a Moments that
-- kept no mark.
-- KEYS: 1 seen-facts zset, 2 recent-touchpoints zset
-- ARGV: 1 the fact id of the batch's first touchpoint of the customer's own ('' for none)
-- Returns the entry ('' for none; '?' for one in a form apply.lua did not read).
local seen, recent, fact_id = KEYS[1], KEYS[2], ARGV[1]
local at = fact_id ~= '' and redis.call('ZSCORE', seen, fact_id)
if at and not redis.call('ZSCORE', seen, 'd:' .. fact_id)
    and not redis.call('ZSCORE', seen, 'x:' .. fact_id) then
  -- kept with the id's own score (the same call wrote both)
  local mark = 'b:' .. string.sub(redis.sha1hex(fact_id), 1, 8) .. '|'
  for _, member in ipairs(redis.call('ZRANGEBYSCORE', seen, at, at)) do
    if string.sub(member, 1, #mark) == mark then
      local told = string.sub(member, #mark + 1)
      if told == '' or told == '?' then return told end
      local ms = string.match(told, '^(%-?%d+)|')
      for _, entry in ipairs(redis.call('ZRANGEBYSCORE', recent, ms, ms)) do
        if string.sub(entry, 1, #told + 1) == told .. '|' then return entry end
      end
      return told .. '|'
    end
  end
end
return redis.call('ZRANGE', recent, -1, -1)[1] or ''
