-- Settle a pending churn-risk snapshot found by a sweep: remove it only if it is still
-- the one the sweep read (a touchpoint may have settled or replaced it meanwhile). The
-- stamp of the field stays, so an older snapshot replayed later cannot come back.
-- KEYS: 1 profile hash
-- ARGV: 1 the snapshot as the sweep read it
if redis.call('HGET', KEYS[1], 'risk_snapshot') == ARGV[1] then
  redis.call('HDEL', KEYS[1], 'risk_snapshot')
  return 1
end
return 0
