-- The commands among ARGV that the user running this may not run on KEYS[1]: a start
-- check, so that a Redis refusing the store one of them says so before any touchpoint.
-- A command Redis does not know (renamed away) is refused too. Redis before 7.0 cannot
-- tell (no acl_check_cmd): none is named.
local refused = {}
if redis.acl_check_cmd == nil then
  return refused
end
for _, command in ipairs(ARGV) do
  local known, allowed = pcall(redis.acl_check_cmd, command, KEYS[1])
  if not known or not allowed then
    table.insert(refused, command)
  end
end
return refused
