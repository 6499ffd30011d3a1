-- Loaded before each script that writes more than once (feature_store/connection.py): Redis
-- keeps what a script wrote before one of its commands is refused (an ACL changed while
-- the processes run, a command renamed away on a Redis restarted), and each retry of the
-- batch would write it again (an event's counts, a contact, a budget's use). So the script
-- first checks that it may run every command it calls (listed where the COMMANDS mark is),
-- and is refused whole, having written nothing. Redis before 7.0 cannot tell: not checked.
if redis.acl_check_cmd ~= nil then
  for _, command in ipairs({--[[COMMANDS]]}) do
    local known, allowed
    if #KEYS > 0 then
      known, allowed = pcall(redis.acl_check_cmd, command, KEYS[1])
    else
      known, allowed = pcall(redis.acl_check_cmd, command)
    end
    if not known or not allowed then
      return redis.error_reply('NOPERM this user has no permissions to run the \'' ..
        string.lower(command) .. '\' command (the script was refused before it wrote)')
    end
  end
end
