--[[
The runner: what happens between the `ecsplay` command line and its exit
code. runtime/host.c calls one entry with the options table (docs/cli.md)
and gets back (exit_code, message); everything is caught below it, the C
side only sees a code.

  run_file(opts, path)              ecsplay [options] PLAYBOOK.lua  (cli/run.lua)
  run_string(opts, chunk, name)     ecsplay -e 'CHUNK'              (cli/run.lua)
  help_file(opts, _, path)          ecsplay PLAYBOOK.lua --help     (cli/run.lua)
  sim_serve(opts, _, argv...)       ecsplay sim serve ...           (cli/sim_serve.lua)
  rollback(opts, _, argv...)        ecsplay rollback JOURNAL        (cli/journal_command.lua)
  resume(opts, _, argv...)          ecsplay resume JOURNAL          (cli/journal_command.lua)

Exit codes (one table, by error kind): ecsplay.cli.exit.
]]
local run = require "ecsplay.cli.run"

local M = {}

function M.run_file(opts, path) return run.file(opts, path) end

function M.run_string(opts, chunk, name) return run.string(opts, chunk, name) end

function M.help_file(opts, _, path)
  opts.help = true
  return run.file(opts, path)
end

function M.sim_serve(opts, _, ...)
  -- lazy: the simulator and its HTTP server load only for `sim serve` (start-up cost)
  return require("ecsplay.cli.sim_serve").run(opts, { ... })
end

function M.rollback(opts, _, ...)
  -- lazy: the journal and the rollout layer load only for rollback/resume (start-up cost)
  return require("ecsplay.cli.journal_command").run("rollback", opts, { ... })
end

function M.resume(opts, _, ...)
  -- lazy: as for rollback
  return require("ecsplay.cli.journal_command").run("resume", opts, { ... })
end

return M
