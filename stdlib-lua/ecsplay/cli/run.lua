--[[
`ecsplay [options] PLAYBOOK.lua [key=value ...]` and `ecsplay -e 'CHUNK'`:
loads the chunk, sets up (ecsplay.cli.setup), runs it as the scheduler's
main task and, when it fails, carries out the playbook's ecsplay.on_abort
handlers (through ecsplay.undo, newest first) before the exit code is
decided (ecsplay.cli.exit). A run whose rollouts journaled ends with a
"playbook_end" line in the group's first journal (rollout/journal_file.lua).

`ecsplay PLAYBOOK.lua --help` (opts.help): runs the chunk only up to its
ecsplay.params declaration, which raises context.params_help; any AWS call
or sleep before it stops the run the same way, so nothing is changed. Then
prints the playbook's leading comment and its parameters (exit 0).
]]
local sched = require "ecsplay.sched"
local log = require "ecsplay.log"
local errors = require "ecsplay.errors"
local context = require "ecsplay.context"
local undo = require "ecsplay.undo"
local setup = require "ecsplay.cli.setup"
local exit = require "ecsplay.cli.exit"
local duration = require "ecsplay.duration"
local output = require "ecsplay.cli.output"
local journal_file = require "ecsplay.rollout.journal_file"

local M = {}

local function dirname(path)
  return path:match("^(.*)/[^/]*$") or "."
end
M.dirname = dirname

-- Carries out the ecsplay.on_abort handlers newest first; returns the
-- failures ({ text=, ... } per failed handler, see ecsplay.undo).
-- at_end(code, message): what happens once the outcome is known, before its last lines (--report).
local function run_task(opts, playbook_dir, body, on_failure, at_end)
  local capture = exit.capture(opts)
  local ok_setup, setup_err = xpcall(setup.environment, capture, opts, playbook_dir)
  local out = output.start(opts) -- how the run looks: terminal, plain or JSON (cli/output.lua)
  if not ok_setup then
    local code, message = exit.outcome(setup_err, {}, opts)
    if at_end then at_end(code, message) end
    out:finish(code, message, setup_err)
    return code, message
  end
  context.report = opts.report
  local failure, rollback_failures
  local ok, res = sched.run(function()
    if not opts.simulate then
      -- over `sim serve`, the run is on the served clock from its first line
      sched.follow_served_clock(opts.endpoint_url or os.getenv("AWS_ENDPOINT_URL"))
    end
    out:ticker()
    local ok_body, f = xpcall(body, capture)
    if not ok_body then
      failure = f
      rollback_failures = on_failure and on_failure(f) or {}
    end
    -- the playbook run ended (its rollouts journaled: resume can tell it from one killed
    -- between two rollouts); written here, on the run's clock, after every rollout ended.
    -- Not after a refusal (exit 2: nothing changed), such as a resume without its Region:
    -- running it again is still possible
    local code = failure and exit.outcome(failure, rollback_failures, opts) or exit.FINISHED
    if context.journal_group and code ~= exit.BAD_INPUT then
      journal_file.end_playbook(context.journal_group, code)
    end
    out:stop_ticker()
  end)
  local code, message = exit.FINISHED, ""
  if not ok then
    -- the runner's own task failed: a bug, but still say what happened
    code, message = exit.FAILED, "ecsplay: internal error: " .. errors.describe(res)
  elseif failure then
    code, message = exit.outcome(failure, rollback_failures, opts)
  end
  if at_end then at_end(code, message) end
  out:finish(code, message, failure)
  return code, message
end

--[[ --report FILE: refused before anything runs when its name chooses no
     format or it cannot be written (bad usage, exit 2); written once the run
     has ended, whatever its outcome, from the run's journal (given.journal for
     `ecsplay rollback|resume`, else the journal group this run opened). A
     report that cannot be written is an error line; the exit code stays the
     run's. → the report module, or nil and the usage message. ]]
local function report_target(path)
  -- lazy: the report modules load only for --report (start-up cost)
  local report = require "ecsplay.report"
  local format, why = report.format_of(path)
  if not format then return nil, "ecsplay: " .. why end
  local f, err = io.open(path .. ".tmp", "wb")
  if not f then return nil, "ecsplay: cannot write the report " .. path .. ": " .. tostring(err)
    .. "; nothing was run" end
  f:close()
  os.remove(path .. ".tmp")
  return report
end

local function write_report(opts, report, given, code, message)
  local group = context.journal_group
  local journal = given.journal or (group and group.root)
  local live = { exit_code = code, message = message, command = given.command or "run" }
  local ok, built = pcall(report.build, journal, live)
  if not ok then
    log.event("error", "report", "cannot build the report " .. opts.report .. ": " .. errors.describe(built))
    return
  end
  local written, why = report.write(opts.report, built)
  if written then
    log.event("info", "report", "report: " .. opts.report, { report = opts.report, journal = journal })
  else
    log.event("error", "report", why)
  end
end

--[[ Runs `body(...)` as the scheduler's main task after setting up; returns
     the exit code and the message. `on_failure(failure)` → the rollback
     failures (the playbook's abort handlers), when body fails. With
     opts.report, writes the run's report at the end (given: { journal=,
     command= } of `ecsplay rollback|resume JOURNAL`). ]]
function M.main_task(opts, playbook_dir, body, on_failure, given)
  if opts.report == nil or opts.help then return run_task(opts, playbook_dir, body, on_failure) end
  local report, why = report_target(opts.report)
  if not report then return exit.BAD_INPUT, why end
  return run_task(opts, playbook_dir, body, on_failure, function(code, message)
    write_report(opts, report, given or {}, code, message)
  end)
end

-- Runs a loaded chunk as the main task; returns exit code, message.
local function execute(opts, chunk, playbook_dir)
  return M.main_task(opts, playbook_dir, chunk, function(failure)
    return undo.run_on_abort(errors.describe(failure.err))
  end)
end

-- The playbook's leading comment block (what it does, how to run it), uncommented.
local function leading_comment(path)
  local lines, f = {}, io.open(path, "r")
  if not f then return lines end
  for line in f:lines() do
    if not (#lines == 0 and line:sub(1, 2) == "#!") then
      local text = line:match("^%-%-%[?=*%[?%s?(.*)$")
      if not text or line:find("^%-%-%]") then break end
      lines[#lines + 1] = text
    end
  end
  f:close()
  return lines
end

local function shown_default(p)
  if p.required then return "(required)" end
  if p.default == nil then return "-" end
  if p.type == "duration" and type(p.default) == "number" then return duration.format(p.default) end
  return tostring(p.default)
end

--[[ The text of `ecsplay PLAYBOOK --help`: its leading comment, usage and
     one row per parameter (name, type, default, help); `spec` is its
     ecsplay.params declaration, or nil when it declares none. ]]
function M.help_text(path, spec)
  local out = {}
  for _, line in ipairs(leading_comment(path)) do out[#out + 1] = line end
  if #out > 0 then out[#out + 1] = "" end
  out[#out + 1] = "usage: ecsplay [options] " .. path .. " [key=value ...]"
  out[#out + 1] = ""
  if not spec then
    out[#out + 1] = "This playbook declares no parameters (ecsplay.params): it takes any key=value "
      .. "argument, as strings in ecsplay.args."
    return table.concat(out, "\n") .. "\n"
  end
  local rows, widths = { { "name", "type", "default", "help" } }, { 0, 0, 0 }
  local names = {}
  for name in pairs(spec) do names[#names + 1] = name end
  table.sort(names)
  for _, name in ipairs(names) do
    local p = spec[name]
    local help = p.help or ""
    if p.one_of then
      local allowed = {}
      for i, v in ipairs(p.one_of) do allowed[i] = tostring(v) end
      help = help .. (help ~= "" and " " or "") .. "(one of: " .. table.concat(allowed, ", ") .. ")"
    end
    rows[#rows + 1] = { name, p.type, shown_default(p), help }
  end
  for _, row in ipairs(rows) do
    for i = 1, 3 do widths[i] = math.max(widths[i], #row[i]) end
  end
  out[#out + 1] = #names == 0 and "parameters: none" or "parameters:"
  for i, row in ipairs(rows) do
    if #names > 0 or i > 1 then
      out[#out + 1] = string.format("  %-" .. widths[1] .. "s  %-" .. widths[2] .. "s  %-"
        .. widths[3] .. "s  %s", row[1], row[2], row[3], row[4]):gsub("%s+$", "")
    end
  end
  return table.concat(out, "\n") .. "\n"
end

-- Under --help, any AWS call before the declaration ends the run instead of
-- going out (region and keys are placeholders: nothing is resolved or sent).
local function stop_aws_calls(signal)
  -- lazy: the AWS client loads only for --help (it would be loaded by the playbook anyway)
  require("ecsplay.aws.call").configure { region = "us-east-1", access_key = "AKIDHELPONLY",
    secret_key = "help-only", transport = function() error(signal, 0) end }
end

-- `ecsplay PLAYBOOK --help`: see the header. → exit code, message
local function help(opts, chunk, path)
  local signal, stopped = {}, false
  local code, message = M.main_task(opts, dirname(path), function()
    context.params_help = signal
    stop_aws_calls(signal)
    chunk()
  end, function(failure)
    if failure.err == signal then stopped = true return {} end
    return undo.run_on_abort(errors.describe(failure.err))
  end)
  context.params_help = nil
  if stopped then code, message = exit.FINISHED, "" end
  if code ~= exit.FINISHED then return code, message end
  if log.format() == "json" then
    -- standard output carries JSON only (docs/events.md)
    log.event("info", "help", M.help_text(path, signal.declared), { playbook = path })
  else
    io.write(M.help_text(path, signal.declared))
    io.flush()
  end
  return exit.FINISHED, ""
end

function M.file(opts, path)
  local f, err = loadfile(path)
  if not f then
    local readable = io.open(path, "r")
    if not readable then
      return output.refused(opts, exit.BAD_INPUT, "ecsplay: cannot read playbook " .. path
        .. ": no such file or not readable")
    end
    readable:close()
    return output.refused(opts, exit.BAD_INPUT, "ecsplay: " .. err)
  end
  opts.playbook_path = path
  if opts.help then return help(opts, f, path) end
  return execute(opts, f, dirname(path))
end

function M.string(opts, chunk, name)
  local f, err = load(chunk, name)
  if not f then return output.refused(opts, exit.BAD_INPUT, "ecsplay: " .. err) end
  if opts.help then return help(opts, f, name) end
  return execute(opts, f, ".")
end

return M
