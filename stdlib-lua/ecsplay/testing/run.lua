--[[
Running code in a test's world as the runner runs a playbook (cli/run.lua):
the run's state reset (ecsplay.context, the "nothing changed yet" counter),
print and the log captured, every rollout's report kept, the playbook's
on_abort handlers on failure, and the exit code from the runner's own table
(cli/exit.lua), so a spec sees the code `ecsplay --simulate PLAYBOOK` gives.

  run.execute(world, body, info) → result   info: { playbook=, args=, dir= }
  run.configure(opts)   the host's options (`ecsplay test`)
  run.reset()           the AWS client points at no world (before each test)
  run.active_world      the world the AWS client points at (testing/world.lua)
]]
local log = require "ecsplay.log"
local errors = require "ecsplay.errors"
local context = require "ecsplay.context"
local undo = require "ecsplay.undo"
local ecsplay = require "ecsplay"
local aws = require "ecsplay.aws.call"
local rollout = require "ecsplay.rollout"
local exit = require "ecsplay.cli.exit"

local M = {}

local settings = { opts = {} }

--[[ opts: the host's options (stdlib: whose frames a failure's trace leaves
     out; log_sink: where log lines go when echoed; verbosity > 0: echo every
     run's log lines, as `ecsplay test -v`). ]]
function M.configure(opts)
  settings.opts = opts or {}
  settings.echo = (tonumber(settings.opts.verbosity) or 0) > 0
end

-- Log lines outside a run: shown with -v only (a spec's output is its result).
local function quiet_sink(level, line)
  if not settings.echo then return end
  if settings.opts.log_sink then
    settings.opts.log_sink(level, line)
  else
    io.stderr:write(line, "\n")
  end
end

--[[ Before each test: no world. An AWS call now fails with bad input
     (NoSimulatedWorld) instead of reaching AWS or the last test's world. ]]
function M.reset()
  M.active_world = nil
  context.reset()
  log.configure { sink = quiet_sink, verbosity = 0 }
  aws.configure { region = "us-east-1", access_key = "AKIDNOSIMULATEDWORLD", secret_key = "no-world",
    endpoint_url = "https://no-world.ecsplay.invalid",
    transport = function()
      error(errors.new("bad_input", { code = "NoSimulatedWorld", message = "this test has no simulated "
        .. "world: make one with testing.world() or testing.run() before calling AWS" }), 0)
    end }
end

-- Wraps each strategy of the rollout facade to keep the report it returns or
-- raises; returns the function that puts the originals back.
local STRATEGIES = { "canary", "linear", "rolling", "blue_green", "codedeploy", "ecs_native" }
local function record_reports(reports)
  local saved = {}
  for _, name in ipairs(STRATEGIES) do
    local original = rawget(rollout, name)
    saved[name] = original
    rollout[name] = function(...)
      local res = table.pack(pcall(original, ...))
      if res[1] then
        if type(res[2]) == "table" then reports[#reports + 1] = res[2] end
        return table.unpack(res, 2, res.n)
      end
      local err = res[2]
      if type(err) == "table" and type(err.report) == "table" then reports[#reports + 1] = err.report end
      error(err, 0)
    end
  end
  return function()
    for name, fn in pairs(saved) do rollout[name] = fn end
  end
end

-- Modules a run loads that are not ecsplay's own (team libraries) are dropped after it.
local function own_module(name) return name == "ecsplay" or name:find("^ecsplay%.") or name == "cjson" end

--[[ Runs body() in `world` as the runner runs a playbook (cli/run.lua): the
     run's state reset, print and the log captured, the on_abort handlers on
     failure, the exit code from cli/exit.lua. info: { playbook=, args=, dir= }. ]]
function M.execute(world, body, info)
  local result = { world = world, reports = {}, log = {}, code = exit.FINISHED }
  context.reset()
  world:activate()
  context.run_info = { playbook = info.playbook, args = info.args, config = {} }
  aws.stats.calls, aws.stats.mutating_calls = 0, 0 -- "nothing changed yet" is per run, as per process
  ecsplay.args = info.args
  local output, real_print = {}, print
  print = function(...) -- luacheck: ignore (the playbook's print goes to result.output)
    local parts = table.pack(...)
    for i = 1, parts.n do parts[i] = tostring(parts[i]) end
    output[#output + 1] = table.concat(parts, "\t")
  end
  log.configure { sink = function(level, line)
    result.log[#result.log + 1] = line
    quiet_sink(level, line)
  end }
  local loaded = {}
  for name in pairs(package.loaded) do loaded[name] = true end
  local saved_path = package.path
  if info.dir then package.path = info.dir .. "/?.lua;" .. info.dir .. "/?/init.lua;" .. package.path end
  local unwrap = record_reports(result.reports)

  local ok, failure = xpcall(function() result.value = body() end, exit.capture(settings.opts))
  if not ok then
    local rollback_failures = undo.run_on_abort(errors.describe(failure.err))
    result.code, result.message = exit.outcome(failure, rollback_failures, settings.opts)
    result.error = failure.err
  end

  unwrap()
  package.path = saved_path
  for name in pairs(package.loaded) do
    if not loaded[name] and not own_module(name) then package.loaded[name] = nil end
  end
  print = real_print -- luacheck: ignore
  log.configure { sink = quiet_sink }
  result.output = table.concat(output, "\n")
  result.report = result.reports[#result.reports]
  return result
end

return M
