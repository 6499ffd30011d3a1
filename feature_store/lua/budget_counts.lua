-- Loaded before spend.lua, take.lua and unspend.lua (feature_store/connection.py). Redis
-- does not undo a script's writes when it fails: a count HINCRBY would refuse (one that
-- is no integer, written as no integer is, or so large that adding to it overflows)
-- fails the call before its first write, not part way through its decisions.
-- ARGV from `from` on: per decision, its id, the number n of offers, the n offer ids.
local function budget_counts_fault(from)
  local i = from
  while i <= #ARGV do
    local n = tonumber(ARGV[i + 1])
    for j = 1, n do
      local count = redis.call('HGET', KEYS[1], ARGV[i + 1 + j])
      if count and count ~= '0' and not (string.match(count, '^%-?[1-9]%d*$')
          and #count <= 18) then
        return redis.error_reply('ERR budget count of an offer does not hold an integer')
      end
    end
    i = i + 2 + n
  end
  return nil
end
