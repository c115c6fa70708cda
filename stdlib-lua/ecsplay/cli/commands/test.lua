--[[
`ecsplay test [--tap] [--junit FILE] [--log-format text|json] [-v] [PATH ...]`: runs *_spec.lua
playbook tests (docs/testing.md) with busted's core on the scheduler, each
test on a fresh simulated world (ecsplay.testing).
Exit 0 all passed, 1 a test failed, 2 bad usage (a --junit file it cannot write
included, refused before any test runs) or a spec file that does not load,
130/143 interrupted (also inside code that never waits: testing/suite.lua).
]]
local sched = require "ecsplay.sched"
local errors = require "ecsplay.errors"
local ecsplay = require "ecsplay"
local args = require "ecsplay.cli.args"
local exit = require "ecsplay.cli.exit"
local setup = require "ecsplay.cli.setup"
local testing = require "ecsplay.testing"
local suite = require "ecsplay.testing.suite"
local output = require "ecsplay.testing.output"

local USAGE = "ecsplay test [--tap] [--junit FILE] [--log-format text|json] [-v] [PATH ...]"
local SUMMARY = "run *_spec.lua playbook tests, each on a fresh simulated world"

local SPEC = {
  valued = { ["--junit"] = "junit", ["--log-format"] = "log_format" },
  switches = {
    ["--tap"] = function(o) o.tap = true end,
    ["-v"] = function(o) o.verbosity = (tonumber(o.verbosity) or 0) + 1 end,
    ["-q"] = function(o) o.verbosity = (tonumber(o.verbosity) or 0) - 1 end,
  },
  max_positional = math.huge,
  needs_value = function(flag) return flag .. " needs a value (the XML file to write)" end,
  unexpected = function(a, hint) return "unknown option " .. a .. hint end,
}

local function bad_usage(text) return args.usage_error("test", text, USAGE) end

local function write_file(path, text)
  local f, err = io.open(path, "w")
  if not f then return nil, err end
  f:write(text)
  f:close()
  return true
end

local function run(opts, argv)
  local ok, res, paths = pcall(args.parse, argv, SPEC, {})
  if not ok then return bad_usage(errors.describe(res)) end
  local o = res
  if o.log_format and o.log_format ~= "text" and o.log_format ~= "json" then
    return bad_usage("--log-format: expected text or json, got " .. o.log_format)
  end
  if o.tap and o.log_format == "json" then return bad_usage("give --tap or --log-format json, not both") end
  local files, problem = suite.find(paths)
  if not files then return bad_usage(problem) end
  -- a --junit file it cannot write is refused before any test runs
  if o.junit then
    local existing = io.open(o.junit, "r")
    if existing then existing:close() end
    local f, err = io.open(o.junit, "a") -- "a": an existing file keeps its content until the end
    if not f then return exit.BAD_INPUT, "ecsplay: test: cannot write --junit file: " .. tostring(err) end
    f:close()
    if not existing then os.remove(o.junit) end
  end
  opts.verbosity = o.verbosity or opts.verbosity
  opts.log_format = o.log_format or opts.log_format

  setup.paths(opts, nil)
  setup.configure_log(opts, sched.now)
  _G.ecsplay = ecsplay
  ecsplay.args = {}
  ecsplay.testing = testing
  testing.configure(opts)

  local write = function(s) io.stdout:write(s) io.stdout:flush() end
  local reporter = o.tap and output.tap(write) or o.log_format == "json" and output.json(write) or output.plain(write)
  local ran, results = sched.run(suite.run, files, reporter.result)
  if not ran then
    if errors.is(results, "bad_input") then return exit.BAD_INPUT, "ecsplay: test: " .. errors.describe(results) end
    return exit.FAILED, "ecsplay: internal error: " .. errors.describe(results)
  end
  local counts = output.counts(results)
  reporter.finish(counts)
  if o.junit then
    local written, err = write_file(o.junit, output.junit(results))
    if not written then return exit.FAILED, "ecsplay: test: cannot write --junit file: " .. tostring(err) end
  end
  if results.interrupted then
    return exit.BY_SIGNAL[results.interrupted] or exit.FAILED,
      "ecsplay: interrupted by signal " .. results.interrupted .. "; the remaining tests were not run"
  end
  local load_errors = {}
  for _, r in ipairs(results) do
    if r.load_error then load_errors[#load_errors + 1] = r.message end
  end
  if #load_errors > 0 then
    return exit.BAD_INPUT, "ecsplay: test: spec file did not load:\n" .. table.concat(load_errors, "\n")
  end
  return counts.failed > 0 and exit.FAILED or exit.FINISHED, ""
end

return {
  summary = SUMMARY,
  help = "--log-format json: one JSON object per test, then a summary object; the spec API is docs/testing.md",
  usage = USAGE,
  run = run,
}
