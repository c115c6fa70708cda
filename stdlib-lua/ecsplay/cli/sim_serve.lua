--[[
`ecsplay sim serve [--port N] [--scenario FILE] [--speed X | --lockstep] [--no-auth] [--iam-policy FILE]`:
the simulator behind an HTTP server (ecsplay.sim.serve) until SIGINT/SIGTERM.
--lockstep: simulated time moves only when every ecsplay client waits (ecsplay.sim.clock).
--help (also `ecsplay sim --help`): HELP below on standard output, exit 0.
A port that cannot be listened on (in use, not allowed) is one line, exit 2.
]]
local ecsplay = require "ecsplay"
local errors = require "ecsplay.errors"
local scenario = require "ecsplay.sim.scenario"
local serve = require "ecsplay.sim.serve"
local iam = require "ecsplay.sim.iam"
local args = require "ecsplay.cli.args"
local exit = require "ecsplay.cli.exit"
local setup = require "ecsplay.cli.setup"

local M = {}

M.HELP = [[
usage: ecsplay sim serve [--port N] [--scenario FILE] [--speed X | --lockstep] [--no-auth] [--iam-policy FILE]

Serves the AWS simulator (ECS, ELBv2, CodeDeploy, CloudWatch, STS) over HTTP on 127.0.0.1
for `ecsplay --endpoint-url URL`, boto3 or the AWS CLI (docs/simulator.md). The first line
printed is "listening on http://127.0.0.1:N"; Ctrl-C (SIGINT) or SIGTERM stops it (exit 0).

options:
  --port N          the port to listen on (default 0: a free one, named on the first line)
  --scenario FILE   the world to start from (docs/scenario.md); default: the built-in world
  --speed X         simulated time runs X times faster than wall time (default 1)
  --lockstep        simulated time moves only when every connected ecsplay client waits
                    (not with --speed)
  --no-auth         accept unsigned requests
  --iam-policy FILE enforce this IAM policy (JSON): a call it does not allow answers
                    AccessDeniedException / AccessDenied (docs/iam.md)
  -h, --help        this text
]]

-- Every option, as the unknown-argument message lists it (the usage line's order).
local OPTIONS = { { "--port", "N", "port" }, { "--scenario", "FILE", "scenario_path" }, { "--speed", "X", "speed" },
  { "--lockstep" }, { "--no-auth" }, { "--iam-policy", "FILE", "iam_policy" } }

local SWITCHES = { ["--no-auth"] = function(c) c.no_auth = true end,
  ["--lockstep"] = function(c) c.lockstep = true end,
  ["--help"] = function(c) c.help = true end, ["-h"] = function(c) c.help = true end }

local function spec()
  local valued, listed = {}, {}
  for _, o in ipairs(OPTIONS) do
    if o[2] then valued[o[1]] = o[3] end
    listed[#listed + 1] = o[2] and (o[1] .. " " .. o[2]) or o[1]
  end
  return { valued = valued, switches = SWITCHES,
    needs_value = function(flag) return "sim serve: " .. flag .. " needs a value" end,
    -- hint: the flag parser's did-you-mean ("; did you mean `--iam-policy`?") or ""
    unexpected = function(a, hint)
      return "sim serve: unknown argument " .. a .. hint .. " (expected " .. table.concat(listed, ", ")
        .. "; --help explains them)"
    end }
end
local SPEC = spec()

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

--[[ A fixed --port that cannot be listened on (in use, or not allowed) is
     found before the simulator starts, as one line: the listen is tried and
     closed again. → nil, or the error (bad input, code CannotListen). ]]
local function check_port(port)
  if port == 0 then return nil end
  -- lazy: looked up when the server starts, as ecsplay.sim.serve does (tests stand a fake in)
  local simserve = require "ecsplay.core.simserve"
  if type(simserve) ~= "table" or not simserve.listen then return nil end
  local ok, server = pcall(simserve.listen, { port = port, host = "127.0.0.1" })
  if ok then
    server:close()
    return nil
  end
  -- the C text starts with where it was raised and the function's name: the reason follows
  local reason = errors.describe(server):gsub("^.-simserve%.listen: ", "")
  return errors.new("bad_input", { code = "CannotListen", field = "--port", message = string.format(
    "sim serve: %s (choose another --port, or --port 0 for a free one)", reason) })
end

function M.run(opts, argv)
  local ok, conf = pcall(parse, argv)
  if not ok then return exit.BAD_INPUT, "ecsplay: " .. errors.describe(conf) end
  if conf.help then
    io.write(M.HELP)
    io.flush()
    return exit.FINISHED, ""
  end
  local port_err = check_port(conf.port)
  if port_err then return exit.code_for(port_err), "ecsplay: " .. errors.describe(port_err, { code = true }) end
  setup.paths(opts, nil)
  local ok_log, log_err = pcall(setup.configure_log, opts, nil)
  if not ok_log then return exit.BAD_INPUT, "ecsplay: " .. errors.describe(log_err) end
  _G.ecsplay = ecsplay
  if conf.scenario_path then
    local ok_s, s = pcall(scenario.load, conf.scenario_path)
    if not ok_s then return exit.BAD_INPUT, "ecsplay: " .. errors.describe(s) end
    conf.scenario = s
  end
  if conf.iam_policy then
    local ok_p, doc = pcall(iam.load_policy, conf.iam_policy)
    if not ok_p then return exit.BAD_INPUT, "ecsplay: --iam-policy: " .. errors.describe(doc) end
    conf.scenario = conf.scenario or scenario.check({}, "default world")
    conf.scenario.iam = { policy = doc, path = conf.iam_policy }
  end
  local ok_run, failure = xpcall(serve.run, exit.capture(opts, true), conf)
  if not ok_run then
    -- a scenario's own failure (its setup, say) is bad input, told in one line as --simulate
    -- tells it; anything else is a bug of the simulator: where it happened, with the trace
    if errors.is_error(failure.err) and exit.code_for(failure.err) ~= exit.FAILED then
      return exit.outcome(failure, nil, opts)
    end
    return exit.FAILED, "ecsplay: sim serve: " .. errors.describe(failure.err) .. "\n" .. (failure.traceback or "")
  end
  return exit.FINISHED, ""
end

return M
