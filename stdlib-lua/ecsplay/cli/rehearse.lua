--[[
What `ecsplay plan` and `ecsplay iam-policy` share: their command lines
(FILE.lua, key=value arguments and options) and running a playbook in this
process with a hook that sees the run's set-up (the in-process simulator
under --simulate) before the playbook's first line.

  rehearse.parse(argv, spec) → conf { file=, args={}, simulate=nil|""|path,
      and the spec's valued flags and switches }            (raises bad input;
      the command adds its usage line: args.usage_error)
  rehearse.check_file(path) → true, or nil and why the playbook cannot be run
      (missing, a folder, a syntax error): bad usage, refused before anything runs
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
function M.parse(argv, spec)
  local rest, conf = {}, { args = {} }
  for _, a in ipairs(argv) do
    if a == "--simulate" then conf.simulate = conf.simulate or ""
    else rest[#rest + 1] = a end
  end
  spec.max_positional = math.huge
  spec.valued = spec.valued or {}
  spec.valued["--simulate"] = "simulate"
  spec.unexpected = spec.unexpected or function(a, hint) return "unexpected argument " .. a .. hint end
  local _, positionals = args.parse(rest, spec, conf)
  for _, p in ipairs(positionals) do
    local k, v = p:match("^([%w_%.%-]+)=(.*)$")
    if k then
      conf.args[k] = v
    elseif not conf.file then
      conf.file = p
    else
      bad("unexpected argument " .. p .. " (the playbook is " .. conf.file .. "; its arguments are key=value)", p)
    end
  end
  if not conf.file then bad("no playbook given", "FILE") end
  if conf.log_format and conf.log_format ~= "text" and conf.log_format ~= "json" then
    bad("--log-format: expected text or json, got " .. conf.log_format, "--log-format")
  end
  return conf
end

function M.check_file(path)
  local f = io.open(path, "r")
  if not f then return nil, "cannot read playbook " .. path .. ": no such file or not readable" end
  local _, _, errno = f:read(1)
  f:close()
  -- reading a folder fails with EISDIR (21)
  if errno == 21 then return nil, path .. " is a folder, not a playbook: give its FILE.lua" end
  local chunk, err = loadfile(path)
  if not chunk then return nil, err end
  return true
end

--[[ os.exit inside a rehearsal would end the command before its document (the
     plan, the policy) is written: it ends the playbook with an error instead,
     raised where the playbook called it (so the message names that line).
     exit(0)/exit(true) is a playbook that finished: the command goes on as
     after its last line. → the stand-in for os.exit, and a function saying
     whether it was called with a success code. ]]
local function exit_stand_in()
  local finished = false
  local function stand_in(code)
    finished = code == nil or code == true or code == 0
    error(errors.new("bad_input", { code = "PlaybookExited",
      message = "the playbook called os.exit(" .. tostring(code == nil and "" or code)
        .. "): a rehearsal ends the playbook there" }), 2)
  end
  return stand_in, function() return finished end
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
  local runnable, why = M.check_file(conf.file)
  if not runnable then return 2, "ecsplay: " .. why end
  local chunk = assert(loadfile(conf.file))
  local o = M.run_options(opts, conf, hooks)
  local out = hooks.print or function(text) io.stderr:write(text, "\n") end
  local real_print, real_exit = print, os.exit
  local exited_ok
  os.exit, exited_ok = exit_stand_in() -- luacheck: ignore
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
  print, os.exit = real_print, real_exit -- luacheck: ignore
  if exited_ok() then return 0, "" end
  return code, message
end

return M
