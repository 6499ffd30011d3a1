-- Hold the lease of an outbox being swept (feature_store.outbox) a while more, only
-- while it is still the sweeper's: not once its process took it back (it was alive),
-- or it expired and another sweeper took it.
-- KEYS: 1 the lease. ARGV: 1 the sweeper, 2 how long (ms).
-- Returns 1 held, 0 not the sweeper's.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
