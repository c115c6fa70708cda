--[[
`ecsplay report JOURNAL.jsonl [-o FILE.html|.json|.xml]`: a run's report,
rebuilt from its run journal (any journal of the run: the other rollouts of
the same playbook run are found through it), the same report `--report`
writes at the end of a run. The file name chooses the format; without -o the
JSON report goes to standard output. Exit 0 written, 2 bad usage, a file
it cannot write (checked before anything is read) or no journal (missing, a
folder, empty, not a journal), 1 the file could not be written at the end.
]]
local errors = require "ecsplay.errors"
local log = require "ecsplay.log"
local args = require "ecsplay.cli.args"
local exit = require "ecsplay.cli.exit"
local setup = require "ecsplay.cli.setup"
local report = require "ecsplay.report"
local journal_file = require "ecsplay.rollout.journal_file"

local USAGE = "ecsplay report JOURNAL.jsonl [-o FILE.html|FILE.json|FILE.xml]"

local SPEC = {
  -- --report as before the command (`ecsplay --report F report J`) means -o
  valued = { ["-o"] = "output", ["--output"] = "output", ["--report"] = "output", ["--log-format"] = "log_format" },
  switches = {
    ["-v"] = function(o) o.verbosity = (tonumber(o.verbosity) or 0) + 1 end,
    ["-q"] = function(o) o.verbosity = (tonumber(o.verbosity) or 0) - 1 end,
  },
  max_positional = 1,
  needs_value = function(flag) return flag .. " needs a value (the report file to write)" end,
  unexpected = function(a, hint) return "unexpected argument " .. a .. hint end,
}

local function run(opts, argv)
  local o = { log_format = opts.log_format, verbosity = opts.verbosity }
  local ok, res, positionals = pcall(args.parse, argv, SPEC, o)
  if not ok then return args.usage_error("report", errors.describe(res), USAGE) end
  local path = positionals[1]
  if not path then
    return args.usage_error("report", "which journal? (a run's .jsonl file, in .ecsplay/runs by default)", USAGE)
  end
  if o.log_format and o.log_format ~= "text" and o.log_format ~= "json" then
    return args.usage_error("report", "--log-format: expected text or json, got " .. o.log_format, USAGE)
  end
  local okl, lerr = pcall(setup.configure_log, o)
  if not okl then return exit.BAD_INPUT, "ecsplay: " .. errors.describe(lerr) end
  if o.output then
    -- a file it cannot write is bad usage, found before the journal is read
    local _, why = report.check_target(o.output)
    if why then return exit.BAD_INPUT, "ecsplay: report: " .. why:gsub("^%-%-report", "-o") end
  end
  local read_ok, state = pcall(journal_file.read, path)
  if read_ok and type(state) == "table" and state.empty then
    return exit.BAD_INPUT, "ecsplay: report: " .. path .. " is empty: the run was stopped before it recorded "
      .. "anything; there is nothing to report"
  end
  local built_ok, built = pcall(report.build, path, { command = "report" })
  if not built_ok then
    return errors.is(built, "bad_input") and exit.BAD_INPUT or exit.FAILED, "ecsplay: " .. errors.describe(built)
  end
  if not o.output then
    io.stdout:write(report.render(built, "json"))
    return exit.FINISHED
  end
  local written, why = report.write(o.output, built)
  if not written then return exit.FAILED, "ecsplay: report: " .. why end
  if o.log_format == "json" then
    -- JSON mode: nothing but JSON on standard output (the event a run's --report ends with)
    log.event("info", "report", "report: " .. o.output, { report = o.output, journal = path })
  else
    io.stdout:write("report: ", o.output, "\n")
  end
  return exit.FINISHED
end

return {
  summary = "rebuild a run's report (HTML, JSON or JUnit XML) from its journal",
  usage = USAGE,
  run = run,
}
