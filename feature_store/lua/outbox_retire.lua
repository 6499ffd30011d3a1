-- Retire an API process's outbox (feature_store.outbox), only as the holder of its lease
-- (the process at its clean stop, or the sweeper that claimed it): not once another
-- holds it (the process came back from a stall, or another sweeper took the lease after
-- it expired), and the outbox only when empty (an empty hash is no key in Redis: nothing
-- held is deleted), with its marks of decisions shown then. The lease, the outbox and its
-- marks share a hash tag: one slot.
-- KEYS: 1 the lease, 2 the outbox, 3 its marks of decisions shown. ARGV: 1 the holder.
-- Returns -1 not the holder's (nothing done), else the decisions left in the outbox
-- (0: retired; more: the lease alone gone, so that another process sweeps them at once).
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return -1
end
redis.call('DEL', KEYS[1])
local left = redis.call('HLEN', KEYS[2])
if left == 0 then
  redis.call('DEL', KEYS[3])
end
return left
