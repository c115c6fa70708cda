-- `ecsplay help [COMMAND]`: the commands, or one command's usage.
local commands = require "ecsplay.cli.commands"
local exit = require "ecsplay.cli.exit"

local function list()
  local lines = { "commands (ecsplay help COMMAND for one):" }
  for _, name in ipairs(commands.NAMES) do
    local mod = commands.find(name)
    lines[#lines + 1] = string.format("  %-12s %s", name, mod.summary or "")
  end
  return table.concat(lines, "\n")
end

return {
  summary = "list the commands, or show one command's usage",
  usage = "ecsplay help [COMMAND]",
  run = function(_, argv)
    local name = argv[1]
    if not name then
      io.stdout:write(list(), "\n")
      return exit.FINISHED
    end
    local mod, err = commands.find(name)
    if not mod then return exit.BAD_INPUT, "ecsplay: " .. err end
    io.stdout:write("usage: ", mod.usage or ("ecsplay " .. name), "\n", mod.summary or "", "\n")
    return exit.FINISHED
  end,
}
