--[[
`ecsplay report JOURNAL.jsonl [-o FILE.html|.json|.xml]`: a run's report,
rebuilt from its run journal (any journal of the run: the other rollouts of
the same playbook run are found through it), the same report `--report`
writes at the end of a run. The file name chooses the format; without -o the
JSON report goes to standard output. Exit 0 written, 2 bad usage or no
journal (missing, a folder, not a journal), 1 the file cannot be written.
]]
local errors = require "ecsplay.errors"
local args = require "ecsplay.cli.args"
local exit = require "ecsplay.cli.exit"
local setup = require "ecsplay.cli.setup"
local report = require "ecsplay.report"

local USAGE = "ecsplay report JOURNAL.jsonl [-o FILE.html|FILE.json|FILE.xml]"

local SPEC = {
  -- --report as before the command (`ecsplay --report F report J`) means -o
  valued = { ["-o"] = "output", ["--output"] = "output", ["--report"] = "output", ["--log-format"] = "log_format" },
  switches = {
    ["-v"] = function(o) o.verbosity = (tonumber(o.verbosity) or 0) + 1 end,
    ["-q"] = function(o) o.verbosity = (tonumber(o.verbosity) or 0) - 1 end,
  },
  max_positional = 1,
  needs_value = function(flag) return flag .. " needs a value (" .. USAGE .. ")" end,
  unexpected = function(a) return "unexpected argument " .. a .. " (" .. USAGE .. ")" end,
}

local function run(opts, argv)
  local o = { log_format = opts.log_format, verbosity = opts.verbosity }
  local ok, res, positionals = pcall(args.parse, argv, SPEC, o)
  if not ok then return exit.BAD_INPUT, "ecsplay: " .. errors.describe(res) end
  local path = positionals[1]
  if not path then return exit.BAD_INPUT, "ecsplay: usage: " .. USAGE end
  local okl, lerr = pcall(setup.configure_log, o)
  if not okl then return exit.BAD_INPUT, "ecsplay: " .. errors.describe(lerr) end
  if o.output then
    local _, why = report.format_of(o.output)
    if why then return exit.BAD_INPUT, "ecsplay: " .. why:gsub("^%-%-report", "-o") end
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
  if not written then return exit.FAILED, "ecsplay: " .. why end
  io.stdout:write("report: ", o.output, "\n")
  return exit.FINISHED
end

return {
  summary = "rebuild a run's report (HTML, JSON or JUnit XML) from its journal",
  usage = USAGE,
  run = run,
}
