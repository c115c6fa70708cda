--[[
`ecsplay rollback|resume [--endpoint-url URL] [--region R] [--profile P]
[--log-format F] [-v|-q] JOURNAL.jsonl`: the options override what the
journal's start line recorded as the client's configuration; a rollout run in
an aws.session is undone in that session, rebuilt from its start line (its own
Region, profile, role, endpoint). ecsplay.rollout.journal does the work.
]]
local errors = require "ecsplay.errors"
local log = require "ecsplay.log"
local journal = require "ecsplay.rollout.journal"
local args = require "ecsplay.cli.args"
local exit = require "ecsplay.cli.exit"
local run = require "ecsplay.cli.run"

local M = {}

local function usage(name)
  return "ecsplay: usage: ecsplay " .. name .. " [--endpoint-url URL] [--region R] "
    .. "[--profile P] [--log-format text|json] [-v|-q] JOURNAL.jsonl"
end

local SPEC = {
  valued = { ["--endpoint-url"] = "endpoint_url", ["--region"] = "region",
    ["--profile"] = "profile", ["--log-format"] = "log_format", ["--report"] = "report" },
  switches = {
    ["-v"] = function(o) o.verbosity = (tonumber(o.verbosity) or 0) + 1 end,
    ["-q"] = function(o) o.verbosity = (tonumber(o.verbosity) or 0) - 1 end,
  },
  max_positional = 1,
  needs_value = function(flag) return "(" .. flag .. " needs a value)" end,
  unexpected = function(a) return "(unexpected argument " .. a .. ")" end,
}

-- name: "rollback" or "resume"; argv: the words after the command.
function M.run(name, opts, argv)
  local ok, res, positionals = pcall(args.parse, argv, SPEC, opts)
  if not ok then return exit.BAD_INPUT, usage(name) .. "\n" .. errors.describe(res) end
  local path = positionals[1]
  if not path then return exit.BAD_INPUT, usage(name) end
  -- resume: the playbook's folder goes on the module path as for a direct run
  local playbook_dir
  if name == "resume" then
    local ok_r, state = pcall(journal.read, path)
    if ok_r and state.start and type(state.start.playbook) == "string" then
      playbook_dir = run.dirname(state.start.playbook)
      opts.playbook_path = state.start.playbook
    end
  end
  return run.main_task(opts, playbook_dir, function()
    -- `rollback`'s events name the run they undo (ecsplay.log's run context); a resumed
    -- rollout sets its own
    local ok_c, state = pcall(journal.read, path)
    local start = ok_c and type(state) == "table" and state.start
    if name == "rollback" and type(start) == "table" then
      log.set_context { run_id = start.run, strategy = start.strategy, rollout = start.name }
    end
    -- resume: where the playbook raised its error, for the last line (cli/exit.lua)
    opts.capture = exit.capture(opts)
    return journal[name](path, opts)
  end, nil, { journal = path, command = name })
end

return M
