--[[
`ecsplay sim serve`: the simulator behind an HTTP server on 127.0.0.1, for boto3, the AWS
CLI and ecsplay's own curl path (--endpoint-url).

serve.run{ port = 0, scenario = table|nil, speed = 1, lockstep = false, no_auth = false,
           out = function(line) (default: stdout, flushed), host = "127.0.0.1",
           warn = function(message) (default: stderr),
           stop = function() → true to stop (tests; default: a pending SIGINT/SIGTERM),
           lease = wall seconds a silent ecsplay client still counts (lockstep; default 10),
           services = list of service modules (tests; default all four) }  → the sim

Clocks (two, on purpose):
 - simulated time (ecsplay.sim.clock): scenario start + wall seconds since the server
   started × speed, or with `lockstep` only what the ecsplay clients wait for; plus whatever
   POST /_sim/advance added. The world ticks on this clock, and every answer says it
   (x-ecsplay-sim-time, x-ecsplay-sim-mode, x-ecsplay-sim-speed), stamped as it leaves.
 - SigV4's X-Amz-Date is checked against the REAL wall clock (±15 min), because SDKs sign
   with the machine's time, which has nothing to do with the simulated time.

Holding answers back: a fault's delay holds the response delay/speed wall seconds (lockstep:
delay); POST /_sim/wait is held until its time comes (ecsplay.sim.clock), and woken early
whenever the clock jumps (/_sim/advance, /_sim/reset, a lockstep advance). A drop closes the
connection without a response (handler status 0).
]]
local core = require "ecsplay.core"
local sim_lib = require "ecsplay.sim"
local served_clock = require "ecsplay.sim.clock"
local errors = require "ecsplay.errors"

local M = {}

local function default_out(line)
  io.stdout:write(line, "\n")
  io.stdout:flush()
end

function M.run(conf)
  conf = conf or {}
  local speed = conf.speed or 1
  local out = conf.out or default_out
  local c = core
  -- lazy: looked up when the server starts (tests stand a fake in for it in package.loaded)
  local simserve = require "ecsplay.core.simserve"
  if type(simserve) ~= "table" or not simserve.listen then
    error(errors.new("internal", { code = "NoHttpServer", message = "ecsplay.core.simserve.listen "
      .. "is not available: this build has no HTTP server (runtime/simserve.c)" }), 0)
  end
  local sim = sim_lib.new(conf.scenario, { no_auth = conf.no_auth, warn = conf.warn,
    services = conf.services })
  local clock = served_clock.new { sim = sim, mode = conf.lockstep and "lockstep" or "speed",
    speed = speed, lease = conf.lease, monotonic = c.monotonic }
  sim.served_clock = clock -- /_sim/clock and /_sim/wait (ecsplay.sim.control)
  sim:set_auth_clock(c.realtime)
  local delay_speed = conf.lockstep and 1 or speed

  local server = simserve.listen { port = conf.port or 0, host = conf.host or "127.0.0.1" }
  out(string.format("listening on http://%s:%d", conf.host or "127.0.0.1", server:port()))

  local function handler(method, path, headers, body)
    clock:heard(headers[served_clock.HEADER_CLIENT])
    local offset, world = sim.offset, sim.world
    local r = sim:handle { method = method, path = path, headers = headers, body = body }
    -- the clock jumped: held waits hear it now, not when their hold is over
    if (sim.offset ~= offset or sim.world ~= world) and server.wake then server:wake() end
    if r.drop then return 0, {}, "" end
    if r.hold then return r.status, r.headers, r.body, r.hold, true end
    return r.status, r.headers, r.body, r.delay and r.delay > 0 and r.delay / delay_speed or nil
  end
  local function stamp() return clock:headers() end

  local stop = conf.stop or function() return c.signal() ~= nil end
  local ok, err = pcall(function()
    while not stop() do server:run(0.05, handler, stamp) end
  end)
  server:close()
  if not ok then error(err, 0) end
  return sim
end

return M
