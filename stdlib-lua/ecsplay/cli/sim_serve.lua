--[[
`ecsplay sim serve [--port N] [--scenario FILE] [--speed X | --lockstep] [--no-auth]`:
the simulator behind an HTTP server (ecsplay.sim.serve) until SIGINT/SIGTERM.
--lockstep: simulated time moves only when every ecsplay client waits (ecsplay.sim.clock).
]]
local ecsplay = require "ecsplay"
local errors = require "ecsplay.errors"
local scenario = require "ecsplay.sim.scenario"
local serve = require "ecsplay.sim.serve"
local args = require "ecsplay.cli.args"
local exit = require "ecsplay.cli.exit"
local setup = require "ecsplay.cli.setup"

local M = {}

local SPEC = {
  valued = { ["--port"] = "port", ["--scenario"] = "scenario_path", ["--speed"] = "speed" },
  switches = { ["--no-auth"] = function(c) c.no_auth = true end,
    ["--lockstep"] = function(c) c.lockstep = true end },
  unexpected = function(a)
    return "sim serve: unknown argument " .. a .. " (expected --port N, --scenario FILE, --speed X, --lockstep, --no-auth)"
  end,
}

local function bad(message, field) error(errors.bad_input(message, field), 0) end

-- The server's configuration from the command line (raises bad input).
local function parse(argv)
  local conf = args.parse(argv, SPEC, {})
  if conf.port ~= nil then
    conf.port = math.tointeger(tonumber(conf.port))
    if not conf.port or conf.port < 0 or conf.port > 65535 then
      bad("--port: expected a number from 0 to 65535", "--port")
    end
  end
  if conf.speed ~= nil then
    conf.speed = tonumber(conf.speed)
    if not conf.speed or conf.speed <= 0 then
      bad("--speed: expected a number above 0, like 1, 60 or 0.5", "--speed")
    end
  end
  if conf.lockstep and conf.speed then
    bad("--lockstep and --speed: choose one (in lockstep, time moves when the ecsplay "
      .. "clients wait, not with the wall clock)", "--lockstep")
  end
  conf.port = conf.port or 0
  conf.speed = conf.speed or 1
  return conf
end

function M.run(opts, argv)
  local ok, conf = pcall(parse, argv)
  if not ok then return exit.BAD_INPUT, "ecsplay: " .. errors.describe(conf) end
  setup.paths(opts, nil)
  local ok_log, log_err = pcall(setup.configure_log, opts, nil)
  if not ok_log then return exit.BAD_INPUT, "ecsplay: " .. errors.describe(log_err) end
  _G.ecsplay = ecsplay
  if conf.scenario_path then
    local ok_s, s = pcall(scenario.load, conf.scenario_path)
    if not ok_s then return exit.BAD_INPUT, "ecsplay: " .. errors.describe(s) end
    conf.scenario = s
  end
  local ok_run, failure = xpcall(serve.run, exit.capture(opts, true), conf)
  if not ok_run then
    return exit.FAILED, "ecsplay: sim serve: " .. errors.describe(failure.err) .. "\n" .. (failure.traceback or "")
  end
  return exit.FINISHED, ""
end

return M
