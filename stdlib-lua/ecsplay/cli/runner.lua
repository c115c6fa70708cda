--[[
The runner: what happens between `ecsplay FILE.lua` and its exit code.
host.c calls one entry with an options table (docs/cli.md) and gets back
(exit_code, message). Everything is caught here: the C side only sees a code.

Exit codes (CLI.md): 0 finished; 1 failed, every rollback completed; 2 bad
usage or input, nothing changed; 3 a rollback failed; 130/143 interrupted
after rollback.
]]
local M = {}

local sched = require "ecsplay.sched"
local log = require "ecsplay.log"
local errors = require "ecsplay.errors"

local function dirname(path)
  return path:match("^(.*)/[^/]*$") or "."
end

-- Team libraries are ordinary Lua modules: the playbook's folder, then every
-- folder of ECSPLAY_PATH, then LUA_PATH_5_4 / the default path (LuaRocks).
local function setup_paths(opts, playbook_dir)
  local stdlib = opts.stdlib
  local rest = package.path:gsub("^" .. stdlib:gsub("%p", "%%%0") .. "/%?%.lua;"
    .. stdlib:gsub("%p", "%%%0") .. "/%?/init%.lua;", "")
  local parts = { stdlib .. "/?.lua", stdlib .. "/?/init.lua" }
  if playbook_dir then
    parts[#parts + 1] = playbook_dir .. "/?.lua"
    parts[#parts + 1] = playbook_dir .. "/?/init.lua"
  end
  local extra = os.getenv("ECSPLAY_PATH")
  if extra and extra ~= "" then
    for dir in extra:gmatch("[^:]+") do
      if dir:find("?", 1, true) then
        parts[#parts + 1] = dir
      else
        parts[#parts + 1] = dir .. "/?.lua"
        parts[#parts + 1] = dir .. "/?/init.lua"
      end
    end
  end
  package.path = table.concat(parts, ";") .. ";" .. rest
end

-- A usage/input error: exit 2 when nothing has changed yet.
M.bad_input = errors.bad_input

local function describe(err)
  if type(err) == "string" then return err end
  if type(err) == "table" then
    local mt = getmetatable(err)
    if mt and mt.__tostring then return tostring(err) end
    if err.message then
      return (err.code and (err.code .. ": ") or "") .. tostring(err.message)
    end
  end
  return tostring(err)
end

--[[ The message handler: for error objects (AWS errors, gate failures) finds
     the first frame in user code, so the message says file:line; always
     keeps a traceback. ]]
local function capture(err)
  local where
  if type(err) == "table" then
    for level = 2, 40 do
      local info = debug.getinfo(level, "Sl")
      if not info then break end
      if info.currentline and info.currentline > 0 and info.source:sub(1, 1) == "@"
         and not info.source:find("/ecsplay/", 1, true) then
        where = info.short_src .. ":" .. info.currentline
        break
      end
    end
  end
  return { err = err, where = where, traceback = debug.traceback("", 2) }
end

local function mutations()
  local aws = package.loaded["ecsplay.aws.call"]
  return aws and aws.stats and aws.stats.mutating_calls or 0
end

-- Runs the ecsplay.on_abort handlers newest first; returns the failures.
local function run_aborts(reason)
  local ecsplay = require "ecsplay"
  local failures = {}
  local aborts = ecsplay._aborts
  if #aborts > 0 then
    log.event("warn", "rollback", "rolling back: " .. reason, { steps = #aborts })
  end
  while #aborts > 0 do
    local entry = table.remove(aborts)
    local ok, e = xpcall(entry.fn, capture, reason)
    if not ok then
      failures[#failures + 1] = (entry.name and (entry.name .. ": ") or "") .. describe(e.err)
      log.event("error", "rollback_failed", "rollback step failed: " .. failures[#failures])
    end
  end
  return failures
end

local function classify(failure, rollback_failures)
  local err = failure.err
  local sig = sched.signal_received()
  local text = describe(err)
  if failure.where and not text:find(failure.where, 1, true) then
    text = failure.where .. ": " .. text
  end
  local code
  if #rollback_failures > 0 or (type(err) == "table" and err.rollback_failed) then
    code = 3
    local left = {}
    for _, f in ipairs(rollback_failures) do left[#left + 1] = f end
    if type(err) == "table" and err.left then left[#left + 1] = tostring(err.left) end
    text = text .. "\nrollback FAILED; what may be left in a mixed state:\n  " .. table.concat(left, "\n  ")
  elseif sched.is_interrupt(err) or (sig and type(err) == "table" and err.interrupted) then
    code = (sig == 15 or (type(err) == "table" and err.signal == 15)) and 143 or 130
  elseif ((type(err) == "table" and (errors.is(err, "BadInput") or err.code == "ParamValidation"
          or (err.kind == "config" and getmetatable(err) == errors.Error)))
         or (type(err) == "string" and err:find("module '[^']+' not found"))) and mutations() == 0 then
    -- a missing module: the playbook was wrong before it changed anything
    -- config errors: a malformed config/credentials file, no region, a bad endpoint URL,
    -- an unknown profile: bad input, and nothing was changed
    code = 2
  else
    code = 1
  end
  -- a plain Lua error is a bug to find: show where. Structured errors (AWS,
  -- gates, rollbacks) already say what happened; their trace is for -v.
  local show_trace = type(err) == "string" or (type(err) == "table" and not getmetatable(err)
    and not err.code) or M.verbose
  if show_trace and failure.traceback then
    text = text .. "\n" .. failure.traceback:gsub("^\n", "")
  end
  return code, "ecsplay: " .. log.redact(text)
end

-- Wires the AWS client to the simulator, in this process, on a virtual clock.
local function setup_simulator(opts, ecsplay)
  local scenario
  if opts.simulate ~= "" then
    local ok, s = pcall(require("ecsplay.sim.scenario").load, opts.simulate)
    if not ok then error(M.bad_input(describe(s)), 0) end
    scenario = s
  end
  local sim = require("ecsplay.sim").new(scenario, { no_auth = opts.no_auth == "1" })
  sched.use_virtual_clock(sim.world.now)
  sim:set_clock(sched.now)
  ecsplay.simulated = true
  ecsplay.sim = sim
  local creds = sim:credentials()
  require("ecsplay.aws.call").configure {
    region = sim.world.region,
    endpoint_url = "https://simulator.ecsplay.invalid",
    access_key = creds.access_key, secret_key = creds.secret_key,
    transport = function(req) return sim:transport(req) end,
  }
  return sim
end

-- A bad --log-format is bad usage (exit 2, one line), not a Lua error with a trace.
local function configure_log(opts, clock)
  local ok, err = pcall(log.configure, { format = opts.log_format or "text",
    verbosity = opts.verbosity, sink = opts.log_sink, clock = clock })
  if not ok then error(M.bad_input(describe(err)), 0) end
end

--[[ What a run journal's start line records so that `ecsplay rollback|resume
     JOURNAL` can reach the same place and run the same playbook again: the
     playbook's absolute path, its arguments and the non-secret client
     configuration (never keys or tokens). ]]
function M.run_info(opts)
  local path = opts.playbook_path
  if path and path:sub(1, 1) ~= "/" then
    local cwd = os.getenv("PWD")
    -- PWD can be stale (a parent that chdir'd without updating it): use it only
    -- when the playbook is really there
    local abs = cwd and cwd ~= "" and (cwd .. "/" .. path:gsub("^%./", ""))
    local f = abs and io.open(abs, "r")
    if f then f:close() path = abs end
  end
  local args = {}
  for k, v in pairs(opts.args or {}) do args[k] = v end
  local config = {}
  if not opts.simulate then
    config.endpoint_url = opts.endpoint_url or os.getenv("AWS_ENDPOINT_URL")
    config.region = opts.region or os.getenv("AWS_REGION") or os.getenv("AWS_DEFAULT_REGION")
    config.profile = opts.profile or os.getenv("AWS_PROFILE")
  end
  return { playbook = path, args = args, config = config }
end

--[[ The AWS client (and the model, protocol, credentials and retry modules it
     pulls in) is configured when first required, not at start: `ecsplay -e
     'return'` or a playbook that only uses the simulator's HTTP face never pays
     for it. aws.configure only stores its options (credentials and region are
     resolved on first use), so doing it at load time changes nothing else. ]]
local function configure_aws_on_load(conf)
  local name = "ecsplay.aws.call"
  if package.loaded[name] then package.loaded[name].configure(conf) return end
  package.preload[name] = function()
    package.preload[name] = nil
    local path, err = package.searchpath(name, package.path)
    if not path then error("module '" .. name .. "' not found:" .. err, 2) end
    local aws = assert(loadfile(path))(name, path)
    aws.configure(conf)
    return aws
  end
end

local function setup(opts, playbook_dir)
  setup_paths(opts, playbook_dir)
  M.verbose = (tonumber(opts.verbosity) or 0) > 0
  configure_log(opts, sched.now)
  local ecsplay = require "ecsplay"
  _G.ecsplay = ecsplay
  ecsplay.args = opts.args or {}
  ecsplay._run = M.run_info(opts)
  if opts.secret_access_key then log.add_secret(opts.secret_access_key) end
  if opts.session_token then log.add_secret(opts.session_token) end
  if opts.simulate then
    setup_simulator(opts, ecsplay)
  else
    configure_aws_on_load {
      region = opts.region, profile = opts.profile, endpoint_url = opts.endpoint_url,
      access_key = opts.access_key_id, secret_key = opts.secret_access_key,
      session_token = opts.session_token,
    }
  end
  return ecsplay
end

-- Runs a loaded chunk as the main task; returns exit code, message.
local function execute(opts, chunk, playbook_dir)
  local main_failure, rollback_failures
  local ok_setup, setup_err = xpcall(setup, capture, opts, playbook_dir)
  if not ok_setup then
    local err = setup_err.err
    if errors.is(err, "BadInput") then
      return 2, "ecsplay: " .. log.redact(describe(err))
    end
    return classify(setup_err, {})
  end
  local ok, res = sched.run(function()
    local ok_chunk, failure = xpcall(chunk, capture)
    if not ok_chunk then
      main_failure = failure
      local reason = describe(failure.err)
      rollback_failures = run_aborts(reason)
    end
  end)
  if not ok then
    -- the runner's own task failed: a bug, but still say what happened
    return 1, "ecsplay: internal error: " .. describe(res)
  end
  if main_failure then return classify(main_failure, rollback_failures) end
  return 0, ""
end

function M.run_file(opts, path)
  local f, err = loadfile(path)
  if not f then
    local io_err = io.open(path, "r")
    if not io_err then
      return 2, "ecsplay: cannot read playbook " .. path .. ": no such file or not readable"
    end
    io_err:close()
    return 2, "ecsplay: " .. err
  end
  opts.playbook_path = path
  return execute(opts, f, dirname(path))
end

function M.run_string(opts, chunk, name)
  local f, err = load(chunk, name)
  if not f then return 2, "ecsplay: " .. err end
  return execute(opts, f, ".")
end

-- `ecsplay sim serve [--port N] [--scenario FILE] [--speed X] [--no-auth]`
function M.sim_serve(opts, _, ...)
  local argv = { ... }
  local conf = { port = 0, speed = 1 }
  local i = 1
  local function value(flag)
    local v = argv[i + 1]
    if not v then error(M.bad_input(flag .. " needs a value"), 0) end
    i = i + 1
    return v
  end
  local ok, err = pcall(function()
    while i <= #argv do
      local a = argv[i]
      local flag, inline = a:match("^(%-%-[%w-]+)=(.*)$")
      if flag then a = flag; table.insert(argv, i + 1, inline) end
      if a == "--port" then
        conf.port = math.tointeger(tonumber(value(a)))
        if not conf.port or conf.port < 0 or conf.port > 65535 then
          error(M.bad_input("--port: expected a number from 0 to 65535"), 0)
        end
      elseif a == "--scenario" then conf.scenario_path = value(a)
      elseif a == "--speed" then
        conf.speed = tonumber(value(a))
        if not conf.speed or conf.speed <= 0 then
          error(M.bad_input("--speed: expected a number above 0, like 1, 60 or 0.5"), 0)
        end
      elseif a == "--no-auth" then conf.no_auth = true
      else error(M.bad_input("sim serve: unknown argument " .. a
        .. " (expected --port N, --scenario FILE, --speed X, --no-auth)"), 0)
      end
      i = i + 1
    end
  end)
  if not ok then return 2, "ecsplay: " .. describe(err) end
  setup_paths(opts, nil)
  local ok_log, log_err = pcall(configure_log, opts, nil)
  if not ok_log then return 2, "ecsplay: " .. describe(log_err) end
  _G.ecsplay = require "ecsplay"
  if conf.scenario_path then
    local ok_s, s = pcall(require("ecsplay.sim.scenario").load, conf.scenario_path)
    if not ok_s then return 2, "ecsplay: " .. describe(s) end
    conf.scenario = s
  end
  local ok_run, run_err = xpcall(require("ecsplay.sim.serve").run, capture, conf)
  if not ok_run then
    return 1, "ecsplay: sim serve: " .. describe(run_err.err) .. "\n" .. run_err.traceback
  end
  return 0, ""
end

-- `ecsplay rollback|resume [--endpoint-url URL] [--region R] [--profile P]
-- [--log-format F] [-v|-q] JOURNAL.jsonl`: the options override what the
-- journal's start line recorded.
local function journal_command(name, opts, argv)
  local usage = "ecsplay: usage: ecsplay " .. name .. " [--endpoint-url URL] [--region R] "
    .. "[--profile P] [--log-format text|json] [-v|-q] JOURNAL.jsonl"
  local valued = { ["--endpoint-url"] = "endpoint_url", ["--region"] = "region",
    ["--profile"] = "profile", ["--log-format"] = "log_format" }
  local path
  local i = 1
  while i <= #argv do
    local a = argv[i]
    local flag, inline = a:match("^(%-%-[%w-]+)=(.*)$")
    if valued[flag or a] then
      local v = inline
      if not v then i = i + 1 v = argv[i] end
      if not v or v == "" then return 2, usage .. "\n(" .. (flag or a) .. " needs a value)" end
      opts[valued[flag or a]] = v
    elseif a == "-v" then opts.verbosity = (tonumber(opts.verbosity) or 0) + 1
    elseif a == "-q" then opts.verbosity = (tonumber(opts.verbosity) or 0) - 1
    elseif a:sub(1, 1) == "-" or path then
      return 2, usage .. "\n(unexpected argument " .. a .. ")"
    else path = a
    end
    i = i + 1
  end
  if not path then return 2, usage end
  -- resume: the playbook's folder goes on the module path as for a direct run
  local playbook_dir
  if name == "resume" then
    local ok_r, state = pcall(require("ecsplay.rollout.journal").read, path)
    if ok_r and state.start and type(state.start.playbook) == "string" then
      playbook_dir = dirname(state.start.playbook)
      opts.playbook_path = state.start.playbook
    end
  end
  local ok_setup, setup_err = xpcall(setup, capture, opts, playbook_dir)
  if not ok_setup then return classify(setup_err, {}) end
  local code, message = 1, ""
  local ok, err = sched.run(function()
    local ok_j, res = xpcall(require("ecsplay.rollout.journal")[name], capture, path, opts)
    if ok_j then
      code, message = 0, ""
    else
      code, message = classify(res, {})
    end
  end)
  if not ok then return 1, "ecsplay: internal error: " .. describe(err) end
  return code, message
end

function M.rollback(opts, _, ...) return journal_command("rollback", opts, { ... }) end
function M.resume(opts, _, ...) return journal_command("resume", opts, { ... }) end

return M
