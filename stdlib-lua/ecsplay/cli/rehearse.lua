--[[
What `ecsplay plan` and `ecsplay iam-policy` share: their command lines
(FILE.lua, key=value arguments and options) and running a playbook in this
process with a hook that sees the run's set-up (the in-process simulator
under --simulate) before the playbook's first line.

  rehearse.parse(argv, spec, usage) → conf { file=, args={}, simulate=nil|""|path,
      and the spec's valued flags and switches }            (raises bad input)
  rehearse.playbook(opts, conf, hooks) → exit code, message
      hooks.before(sim)   after set-up (sim: the in-process simulator or nil)
      hooks.run(chunk, sim)  runs the playbook's chunk (default: chunk()); iam-policy's
                          killed paths go on after it in the same run (cli/iam_paths.lua)
      hooks.print(text)   where the playbook's own print goes (default: stderr)
      hooks.log(line)     where the run's log lines go (default: stderr)
      hooks.observe(stage, sim)  called with "before" right before the playbook's first
                          line and "after" right after its last (failed or not), inside
                          the run (plan --world-dump: the world on either side)
]]
local errors = require "ecsplay.errors"
local context = require "ecsplay.context"
local args = require "ecsplay.cli.args"
local run = require "ecsplay.cli.run"

local M = {}

local function bad(message, field) error(errors.bad_input(message, field), 0) end

--[[ argv: every word after the command. `--simulate` alone and `--simulate=S` are
     both taken (args.parse would read the next word as its value). ]]
function M.parse(argv, spec, usage)
  local rest, conf = {}, { args = {} }
  for _, a in ipairs(argv) do
    if a == "--simulate" then conf.simulate = conf.simulate or ""
    else rest[#rest + 1] = a end
  end
  spec.max_positional = math.huge
  spec.valued = spec.valued or {}
  spec.valued["--simulate"] = "simulate"
  spec.unexpected = spec.unexpected or function(a) return "unexpected argument " .. a .. "\nusage: " .. usage end
  local _, positionals = args.parse(rest, spec, conf)
  for _, p in ipairs(positionals) do
    local k, v = p:match("^([%w_%.%-]+)=(.*)$")
    if k then
      conf.args[k] = v
    elseif not conf.file then
      conf.file = p
    else
      bad("unexpected argument " .. p .. " (playbook arguments are key=value)\nusage: " .. usage, p)
    end
  end
  if not conf.file then bad("no playbook given\nusage: " .. usage, "FILE") end
  return conf
end

-- The options of a playbook run from the command's configuration.
function M.run_options(opts, conf, hooks)
  local o = {}
  for k, v in pairs(opts) do o[k] = v end
  o.args = conf.args
  o.simulate = conf.simulate
  o.playbook_path = conf.file
  for _, k in ipairs({ "endpoint_url", "region", "profile", "log_format", "verbosity" }) do
    if conf[k] ~= nil then o[k] = conf[k] end
  end
  -- standard output is the command's document (the plan, the policy): the log goes to stderr
  local log = hooks and hooks.log
  o.log_sink = function(_, line)
    if log then return log(line) end
    io.stderr:write(line, "\n")
    io.stderr:flush()
  end
  return o
end

function M.playbook(opts, conf, hooks)
  local chunk, err = loadfile(conf.file)
  if not chunk then
    local readable = io.open(conf.file, "r")
    if not readable then
      return 2, "ecsplay: cannot read playbook " .. conf.file .. ": no such file or not readable"
    end
    readable:close()
    return 2, "ecsplay: " .. err
  end
  local o = M.run_options(opts, conf, hooks)
  local out = hooks.print or function(text) io.stderr:write(text, "\n") end
  local real_print = print
  local code, message = run.main_task(o, run.dirname(conf.file), function()
    -- the playbook's own output is not the command's (stdout is the plan or the policy)
    print = function(...) -- luacheck: ignore
      local parts = table.pack(...)
      for i = 1, parts.n do parts[i] = tostring(parts[i]) end
      out(table.concat(parts, "\t"))
    end
    local sim = context.sim
    if hooks.before then hooks.before(sim) end
    local body = chunk
    if hooks.run then body = function() return hooks.run(chunk, sim) end end
    local observe = hooks.observe
    if not observe then return body() end
    observe("before", sim)
    local ok, failure = pcall(body)
    observe("after", sim)
    if not ok then error(failure, 0) end
  end)
  print = real_print -- luacheck: ignore
  return code, message
end

return M
