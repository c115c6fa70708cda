--[[
What every command sets up before user code runs: the module path (team
libraries), logging, the `ecsplay` global, the run context
(ecsplay.context), and the AWS client pointed at AWS or at the in-process
simulator.

  setup.paths(opts, playbook_dir)
  setup.configure_log(opts, clock)      a bad --log-format is bad usage
  setup.run_info(opts) → { playbook=, args=, config= }
  setup.environment(opts, playbook_dir) → the `ecsplay` table (raises on bad input)
]]
local sched = require "ecsplay.sched"
local log = require "ecsplay.log"
local errors = require "ecsplay.errors"
local context = require "ecsplay.context"
local ecsplay = require "ecsplay"
local rocks = require "ecsplay.cli.rocks"

local M = {}

-- Team libraries are ordinary Lua modules: the playbook's folder, then every
-- folder of ECSPLAY_PATH, the project's lua_modules/ and ECSPLAY_ROCKS_TREE
-- (LuaRocks trees, cli/rocks.lua), then LUA_PATH_5_4 / the default path.
function M.paths(opts, playbook_dir)
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
  for _, p in ipairs(rocks.paths(playbook_dir)) do parts[#parts + 1] = p end
  package.path = table.concat(parts, ";") .. ";" .. rest
end

--[[ The last searcher: reached only when no other one found the module, it
     raises bad input (code ModuleNotFound, exit 2 while nothing changed)
     with every place searched as the error's details, instead of Lua's
     plain string. A searcher added after it (by a team library) is left to
     run: then this one steps aside. ]]
local function module_not_found(name)
  local searchers = package.searchers
  if searchers[#searchers] ~= module_not_found then return nil end
  local details = {}
  for i = 1, #searchers - 1 do
    local found = searchers[i](name)
    if type(found) == "string" then
      for line in found:gmatch("[^\n]+") do
        line = line:gsub("^%s+", "")
        if line ~= "" then details[#details + 1] = line end
      end
    end
  end
  error(errors.new("bad_input", { code = "ModuleNotFound", field = name, details = details,
    message = string.format("module '%s' not found", name) }), 0)
end

local function add_searcher()
  for _, s in ipairs(package.searchers) do
    if s == module_not_found then return end
  end
  package.searchers[#package.searchers + 1] = module_not_found
end

-- A bad --log-format is bad usage (exit 2, one line), not a Lua error with a trace.
function M.configure_log(opts, clock)
  local ok, err = pcall(log.configure, { format = opts.log_format or "text",
    verbosity = opts.verbosity, sink = opts.log_sink, clock = clock })
  if not ok then error(errors.bad_input(errors.describe(err), "--log-format"), 0) end
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

-- Wires the AWS client to the simulator, in this process, on a virtual clock.
local function setup_simulator(opts)
  local scenario
  if opts.simulate ~= "" then
    -- lazy: the simulator is loaded only under --simulate (start-up cost)
    scenario = require("ecsplay.sim.scenario").load(opts.simulate)
  end
  local sim = require("ecsplay.sim").new(scenario, { no_auth = opts.no_auth == "1" }) -- lazy: as above
  sched.use_virtual_clock(sim.world.now)
  sim:set_clock(sched.now)
  context.simulated = true
  context.sim = sim
  local creds = sim:credentials()
  require("ecsplay.aws.call").configure { -- lazy: the AWS client and its models (start-up cost)
    region = sim.world.region,
    endpoint_url = "https://simulator.ecsplay.invalid",
    access_key = creds.access_key, secret_key = creds.secret_key,
    transport = function(req) return sim:transport(req) end,
  }
  return sim
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

--[[ Everything before user code runs; returns the `ecsplay` table (also the
     global `ecsplay`). Raises bad input for a bad --log-format or scenario. ]]
function M.environment(opts, playbook_dir)
  M.paths(opts, playbook_dir)
  add_searcher()
  M.configure_log(opts, sched.now)
  _G.ecsplay = ecsplay
  ecsplay.args = opts.args or {}
  context.reset()
  context.run_info = M.run_info(opts)
  if opts.secret_access_key then log.add_secret(opts.secret_access_key) end
  if opts.session_token then log.add_secret(opts.session_token) end
  if opts.simulate then
    setup_simulator(opts)
  else
    configure_aws_on_load {
      region = opts.region, profile = opts.profile, endpoint_url = opts.endpoint_url,
      access_key = opts.access_key_id, secret_key = opts.secret_access_key,
      session_token = opts.session_token,
    }
  end
  return ecsplay
end

return M
