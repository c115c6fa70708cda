--[[
`ecsplay [options] PLAYBOOK.lua [key=value ...]` and `ecsplay -e 'CHUNK'`:
loads the chunk, sets up (ecsplay.cli.setup), runs it as the scheduler's
main task and, when it fails, carries out the playbook's ecsplay.on_abort
handlers (through ecsplay.undo, newest first) before the exit code is
decided (ecsplay.cli.exit).
]]
local sched = require "ecsplay.sched"
local log = require "ecsplay.log"
local errors = require "ecsplay.errors"
local context = require "ecsplay.context"
local undo = require "ecsplay.undo"
local setup = require "ecsplay.cli.setup"
local exit = require "ecsplay.cli.exit"

local M = {}

local function dirname(path)
  return path:match("^(.*)/[^/]*$") or "."
end
M.dirname = dirname

-- Carries out the ecsplay.on_abort handlers newest first; returns the
-- failures ({ text=, ... } per failed handler, see ecsplay.undo).
local function run_aborts(reason)
  local aborts = context.aborts
  if #aborts == 0 then return {} end
  log.event("warn", "rollback", "rolling back: " .. reason, { steps = #aborts })
  return undo.run(aborts, {
    exec = function(entry) entry.fn(reason) end,
    describe = function(entry) return entry.name or "on_abort handler" end,
    on_failed = function(_, _, text)
      log.event("error", "rollback_failed", "rollback step failed: " .. text)
    end,
  })
end

--[[ Runs `body(...)` as the scheduler's main task after setting up; returns
     the exit code and the message. `on_failure(failure)` → the rollback
     failures (the playbook's abort handlers), when body fails. ]]
function M.main_task(opts, playbook_dir, body, on_failure)
  local capture = exit.capture(opts)
  local ok_setup, setup_err = xpcall(setup.environment, capture, opts, playbook_dir)
  if not ok_setup then return exit.outcome(setup_err, {}, opts) end
  local failure, rollback_failures
  local ok, res = sched.run(function()
    local ok_body, f = xpcall(body, capture)
    if not ok_body then
      failure = f
      rollback_failures = on_failure and on_failure(f) or {}
    end
  end)
  if not ok then
    -- the runner's own task failed: a bug, but still say what happened
    return exit.FAILED, "ecsplay: internal error: " .. errors.describe(res)
  end
  if failure then return exit.outcome(failure, rollback_failures, opts) end
  return exit.FINISHED, ""
end

-- Runs a loaded chunk as the main task; returns exit code, message.
local function execute(opts, chunk, playbook_dir)
  return M.main_task(opts, playbook_dir, chunk, function(failure)
    return run_aborts(errors.describe(failure.err))
  end)
end

function M.file(opts, path)
  local f, err = loadfile(path)
  if not f then
    local readable = io.open(path, "r")
    if not readable then
      return exit.BAD_INPUT, "ecsplay: cannot read playbook " .. path .. ": no such file or not readable"
    end
    readable:close()
    return exit.BAD_INPUT, "ecsplay: " .. err
  end
  opts.playbook_path = path
  return execute(opts, f, dirname(path))
end

function M.string(opts, chunk, name)
  local f, err = load(chunk, name)
  if not f then return exit.BAD_INPUT, "ecsplay: " .. err end
  return execute(opts, f, ".")
end

return M
