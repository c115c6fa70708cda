--[[
The runner: what happens between the `ecsplay` command line and its exit
code. runtime/host.c calls one entry with the options table (docs/cli.md)
and gets back (exit_code, message); everything is caught below it, the C
side only sees a code.

  run_file(opts, path)              ecsplay [options] PLAYBOOK.lua  (cli/run.lua)
  run_string(opts, chunk, name)     ecsplay -e 'CHUNK'              (cli/run.lua)
  help_file(opts, _, path)          ecsplay PLAYBOOK.lua --help     (cli/run.lua)
  command(opts, name, argv...)      ecsplay NAME ...                (cli/commands/NAME.lua)

Exit codes (one table, by error kind): ecsplay.cli.exit.
]]
local run = require "ecsplay.cli.run"
local exit = require "ecsplay.cli.exit"
local errors = require "ecsplay.errors"
local args = require "ecsplay.cli.args"

local M = {}

function M.run_file(opts, path) return run.file(opts, path) end

function M.run_string(opts, chunk, name) return run.string(opts, chunk, name) end

function M.help_file(opts, _, path)
  opts.help = true
  return run.file(opts, path)
end

-- `ecsplay NAME ...`: a command of the registry (ecsplay.cli.commands); argv
-- holds every other word of the command line.
function M.command(opts, name, ...)
  -- lazy: the registry (and through it each command) loads only for a command (start-up cost)
  local commands = require "ecsplay.cli.commands"
  local mod, err = commands.find(name)
  if not mod then return exit.BAD_INPUT, "ecsplay: " .. err end
  -- A command may let a structured error escape (a flag-parsing bad_input, say):
  -- it gets its kind's exit code; anything else is a bug and keeps its traceback.
  local argv = { ... }
  -- `--help`/`-h` anywhere: the command's usage, exit 0, for every command in one
  -- place (a command with a longer help of its own says own_help = true: sim)
  if not mod.own_help and args.wants_help(argv) then
    io.stdout:write("usage: ", mod.usage or ("ecsplay " .. name), "\n", mod.summary or "", "\n",
      mod.help and (mod.help .. "\n") or "")
    io.stdout:flush()
    return exit.FINISHED
  end
  local ok, code, message = pcall(mod.run, opts, argv)
  if ok then return code, message end
  if not errors.is_error(code) then error(code, 0) end
  return exit.code_for(code), "ecsplay: " .. errors.describe(code)
end

return M
