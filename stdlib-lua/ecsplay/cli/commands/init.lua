--[[
The command registry: `ecsplay NAME ...` for every NAME below runs the module
ecsplay.cli.commands.NAME (a hyphen in NAME becomes `_`), one file per
command (Kong's kong/cmd/). A command module returns

  { summary = "one line for `ecsplay help`",
    usage   = "ecsplay NAME ...",           -- shown on bad usage and --help
    run     = function(opts, argv) return exit_code[, message] end }

opts: the host's options (docs/cli.md); argv: every word of the command line
except the command's name, options before it included (so
`ecsplay --endpoint-url URL rollback J` works as `ecsplay rollback J --endpoint-url URL`).

Adding a command: write commands/NAME.lua and add NAME to NAMES (the order of
`ecsplay help`). runtime/main.c sends any bare word that is not a file here.
]]
local strings = require "ecsplay.util.strings"

local M = {}

M.NAMES = {
  "rollback", "resume", "status", "promote", "pause", "unpause", "abort", "report",
  "plan", "lint", "test", "iam-policy", "new",
  "sim", "help",
}

local known = {}
for _, n in ipairs(M.NAMES) do known[n] = true end

function M.module_name(name) return "ecsplay.cli.commands." .. name:gsub("-", "_") end

-- The command module for name, or nil and a message with a did-you-mean.
function M.find(name)
  if not known[name] then
    return nil, "unknown command `" .. tostring(name) .. "`"
      .. strings.did_you_mean(name, M.NAMES)
      .. " (`ecsplay help` lists the commands; a playbook is a FILE.lua that exists)"
  end
  -- lazy: each command loads only when it is the one being run (start-up cost)
  return require(M.module_name(name))
end

return M
