-- `ecsplay help [COMMAND]`: the commands, by what they are for, or one command's usage.
local strings = require "ecsplay.util.strings"
local errors = require "ecsplay.errors"
local commands = require "ecsplay.cli.commands"
local args = require "ecsplay.cli.args"
local exit = require "ecsplay.cli.exit"

local USAGE = "ecsplay help [COMMAND]"

-- The groups `ecsplay help` shows, in order; a command of NAMES in none of
-- them is listed at the end, so a new command is never hidden.
local GROUPS = {
  { title = "a run and its journal", names = { "rollback", "resume", "status", "promote", "pause", "unpause", "abort",
    "report" } },
  { title = "before it runs", names = { "plan", "lint", "test", "iam-policy", "new" } },
  { title = "the simulator", names = { "sim" } },
  { title = "this help", names = { "help" } },
}

local function list()
  local lines = { "commands (ecsplay help COMMAND, or ecsplay COMMAND --help, for one):" }
  local shown, known = {}, {}
  for _, n in ipairs(commands.NAMES) do known[n] = true end
  local function add(name)
    local mod = commands.find(name)
    lines[#lines + 1] = string.format("  %-12s %s", name, mod.summary or "")
    shown[name] = true
  end
  for _, g in ipairs(GROUPS) do
    local present = {}
    for _, n in ipairs(g.names) do if known[n] then present[#present + 1] = n end end
    if #present > 0 then
      lines[#lines + 1] = g.title .. ":"
      for _, n in ipairs(present) do add(n) end
    end
  end
  local header = false
  for _, n in ipairs(commands.NAMES) do
    if not shown[n] then
      if not header then lines[#lines + 1] = "other:" header = true end
      add(n)
    end
  end
  lines[#lines + 1] = "a playbook runs with `ecsplay [options] FILE.lua [key=value ...]` (ecsplay --help)"
  return table.concat(lines, "\n")
end

return {
  summary = "list the commands, or show one command's usage",
  usage = USAGE,
  run = function(_, argv)
    -- options written before the command (`ecsplay --log-format json help`) arrive here too
    local ok, err, words = pcall(args.parse, argv, {
      valued = { ["--log-format"] = "log_format", ["--region"] = "region", ["--profile"] = "profile",
        ["--endpoint-url"] = "endpoint_url", ["--report"] = "report" },
      switches = { ["-v"] = function() end, ["-q"] = function() end },
      max_positional = 1,
      unexpected = function(a, hint) return "unexpected argument " .. a .. hint end,
    })
    if not ok then return args.usage_error("help", errors.describe(err), USAGE) end
    local name = words[1]
    if not name then
      io.stdout:write(list(), "\n")
      return exit.FINISHED
    end
    if not commands.find(name) then
      return args.usage_error("help", "no command `" .. name .. "`"
        .. strings.did_you_mean(name, commands.NAMES, { list_all = true }), USAGE)
    end
    local mod = commands.find(name)
    io.stdout:write("usage: ", mod.usage or ("ecsplay " .. name), "\n", mod.summary or "", "\n",
      mod.help and (mod.help .. "\n") or "")
    return exit.FINISHED
  end,
}
