--[=[
`ecsplay plan FILE.lua [--simulate[=S] | --endpoint-url URL] [--region R] [--profile P]
[--log-format text|json] [key=value ...]`: runs the playbook's checks and
preparation against the account with every mutating call refused, then says
what each rollout would do (rollout/plan.lua) and what stands in its way.

Refused: any operation that is not Describe*/List*/Get*/BatchGet*, by name,
twice: in aws.call before a request is built, and at the transport, by the
operation the request on the wire names (X-Amz-Target, or Action= of a
query request), so a request built some other way is refused as well.
A playbook that makes a change itself (outside a rollout) stops there: the
plan says where. Exit 0 when the run could start, 2 when it could not (a
problem found, or the playbook failed before its first change).
--log-format json: the plan is one JSON document on standard output.
--world-dump FILE (with --simulate): writes the simulated world right before the
playbook's first line and right after its last to FILE, one line each:
{"summary": what GET /_sim/world answers (asked in process), "state": every world's whole state
(sim/dump.lua)}; two equal lines say the plan changed nothing.
]=]
local errors = require "ecsplay.errors"
local json = require "ecsplay.json"
local duration = require "ecsplay.duration"
local exit = require "ecsplay.cli.exit"
local args = require "ecsplay.cli.args"
local rehearse = require "ecsplay.cli.rehearse"
local context = require "ecsplay.context"
local sim_dump = require "ecsplay.sim.dump"

local USAGE = "ecsplay plan FILE.lua [--simulate[=SCENARIO] | --endpoint-url URL] [--region R] [--profile P] "
  .. "[--log-format text|json] [--world-dump FILE] [key=value ...]"

local function form_field(body, name)
  for pair in (body or ""):gmatch("[^&]+") do
    local k, v = pair:match("^([^=]*)=?(.*)$")
    if k == name then return (v:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end)) end
  end
end

-- The operation a request on the wire names (JSON: X-Amz-Target; query: Action=).
local function wire_operation(req)
  for k, v in pairs(req.headers or {}) do
    if k:lower() == "x-amz-target" then return (tostring(v):match("%.([%w]+)$")) end
  end
  return form_field(req.body, "Action")
end

local function refuser(aws, refused)
  return function(service, op, req)
    local name = op
    if req then name = wire_operation(req) or "an unnamed operation" end
    if service ~= "sts" and not aws.read_only(name) then
      refused[#refused + 1] = { service = service, operation = name }
      return errors.new("bad_input", { code = "PlanRefused", service = service, operation = name,
        message = string.format("plan: %s %s would change the account; refused", service, name) })
    end
    return nil
  end
end

local function show(v)
  if v == nil then return "(none)" end
  if type(v) == "string" then return string.format("%q", v) end
  return tostring(v)
end

local function text_entry(out, e)
  out[#out + 1] = string.format("rollout %s %q", e.strategy, e.name)
  local v = e.version
  out[#out + 1] = string.format("  task definition: %s %s (from %s)", v.action, v.to, v.from)
  for _, d in ipairs(v.diff) do
    out[#out + 1] = string.format("    %s: %s -> %s", d.field, show(d.from), show(d.to))
  end
  out[#out + 1] = "  services:"
  for _, s in ipairs(e.services) do
    out[#out + 1] = string.format("    %s: task definition %s -> %s, desired %s -> %s%s", s.service,
      s.task_definition.from, s.task_definition.to or "(unchanged)", tostring(s.desired.from),
      tostring(s.desired.to), s.note and ("  (" .. s.note .. ")") or "")
  end
  if e.traffic then
    out[#out + 1] = "  traffic on " .. tostring(e.traffic.point) .. ":"
    for i, s in ipairs(e.traffic.steps) do
      out[#out + 1] = string.format("    %d. %s%s", i, s.weights,
        s.gates and (", gates measured for " .. duration.format(s.bake or 0)) or "")
    end
  end
  out[#out + 1] = #e.gates == 0 and "  gates: none measured now" or "  gates now:"
  for _, g in ipairs(e.gates) do out[#out + 1] = string.format("    %s: %s", g.gate, g.reading) end
  out[#out + 1] = string.format("  estimated duration: %s (bakes and metric publishing; plus the time new "
    .. "tasks take to become healthy)", duration.format(e.duration))
  for _, p in ipairs(e.problems) do out[#out + 1] = "  PROBLEM: " .. p.message end
end

local function run(opts, argv)
  local ok, conf = pcall(rehearse.parse, argv, {
    valued = { ["--endpoint-url"] = "endpoint_url", ["--region"] = "region", ["--profile"] = "profile",
      ["--log-format"] = "log_format", ["--world-dump"] = "world_dump" },
    switches = { ["-v"] = function(c) c.verbosity = (c.verbosity or 0) + 1 end,
      ["-q"] = function(c) c.verbosity = (c.verbosity or 0) - 1 end },
  })
  if not ok then return args.usage_error("plan", errors.describe(conf), USAGE) end
  -- a playbook that cannot run is bad usage, not a plan: nothing on standard output
  local runnable, why = rehearse.check_file(conf.file)
  if not runnable then return args.usage_error("plan", why) end
  local dump_file
  if conf.world_dump then
    if not conf.simulate then
      return args.usage_error("plan", "--world-dump needs --simulate (it writes the simulated world)", USAGE)
    end
    local err
    dump_file, err = io.open(conf.world_dump, "wb")
    if not dump_file then return exit.BAD_INPUT, "ecsplay: plan: --world-dump: cannot write " .. tostring(err) end
  end
  local entries, refused = {}, {}
  local code, message = rehearse.playbook(opts, conf, { observe = dump_file and function(_, sim)
    -- the request GET /_sim/world is, answered in process (the world brought up to the clock first)
    local summary = sim:handle { method = "GET", path = "/_sim/world", headers = {} }.body
    dump_file:write('{"summary":', summary, ',"state":', sim_dump.state(sim), "}\n")
  end, before = function()
    context.plan = function(entry) entries[#entries + 1] = entry end
    -- lazy: the AWS client as the run configured it (setup wires it on first require)
    local aws = require "ecsplay.aws.call"
    aws.refuse = refuser(aws, refused)
  end })
  -- lazy: as above; the refusal ends with the plan
  require("ecsplay.aws.call").refuse = nil
  if dump_file then dump_file:close() end
  context.plan = nil
  -- Ctrl-C (SIGINT/SIGTERM): no plan, half of one would mislead
  for _, c in pairs(exit.BY_SIGNAL) do
    if code == c then return code, message end
  end
  local problems = {}
  for _, e in ipairs(entries) do
    for _, p in ipairs(e.problems) do problems[#problems + 1] = p end
  end
  local stopped
  if code ~= exit.FINISHED then
    if #refused > 0 then
      stopped = string.format("%s %s (the playbook's own change, outside a rollout)", refused[1].service,
        refused[1].operation)
    else
      problems[#problems + 1] = { kind = "failed", message = (message or ""):gsub("^ecsplay: ", "") }
    end
  end
  local could_start = #problems == 0
  if conf.log_format == "json" then
    io.write(json.encode({ playbook = conf.file, could_start = could_start, rollouts = json.array(entries),
      problems = json.array(problems), stopped_at = stopped }), "\n")
  else
    local out = { "plan: " .. conf.file }
    for _, e in ipairs(entries) do text_entry(out, e) end
    if #entries == 0 then out[#out + 1] = "no rollout was reached" end
    if stopped then out[#out + 1] = "stopped at: " .. stopped end
    for _, p in ipairs(problems) do
      if p.kind == "failed" then out[#out + 1] = "PROBLEM: " .. p.message end
    end
    out[#out + 1] = could_start and "the run could start (exit 0)"
      or string.format("the run could not start: %d problem(s) (exit 2)", #problems)
    io.write(table.concat(out, "\n"), "\n")
  end
  io.flush()
  return could_start and exit.FINISHED or exit.BAD_INPUT, ""
end

return { summary = "say what a playbook would change, with every change refused (exit 2: it could not start)",
  usage = USAGE, run = run }
