--[[
`ecsplay sim serve`: the simulator behind an HTTP server on 127.0.0.1, for boto3, the AWS
CLI and ecsplay's own curl path (--endpoint-url).

serve.run{ port = 0, scenario = table|nil, speed = 1, no_auth = false,
           out = function(line) (default: stdout, flushed), host = "127.0.0.1",
           warn = function(message) (default: stderr),
           stop = function() → true to stop (tests; default: a pending SIGINT/SIGTERM),
           services = list of service modules (tests; default all four) }  → the sim

Clocks (two, on purpose):
 - simulated time = scenario start + wall seconds since the server started × speed
   + whatever POST /_sim/advance added. The world ticks on this clock.
 - SigV4's X-Amz-Date is checked against the REAL wall clock (±15 min), because SDKs sign
   with the machine's time, which has nothing to do with the simulated time.

Faults: a delay holds the response back delay/speed wall seconds (the server's own delay
support when it has one, else a blocking wait: the simulator answers one request at a
time anyway); a drop closes the connection without a response (handler status 0).
]]
local core = require "ecsplay.core"
local sim_lib = require "ecsplay.sim"
local errors = require "ecsplay.errors"

local M = {}

local function default_out(line)
  io.stdout:write(line, "\n")
  io.stdout:flush()
end

-- Blocking wait of `secs` wall seconds; used only for injected delays.
local function wall_wait(secs)
  local c = core
  local deadline = c.monotonic() + secs
  while true do
    local left = deadline - c.monotonic()
    if left <= 0 then return end
    c.sleep_real(math.min(left, 0.05))
    if c.signal() then return end
  end
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
  local start = sim.world.now
  local wall0 = c.monotonic()
  sim:set_clock(function() return start + (c.monotonic() - wall0) * speed end)
  sim:set_auth_clock(c.realtime)
  sim.on_reset = function() wall0 = c.monotonic() end

  local server = simserve.listen { port = conf.port or 0, host = conf.host or "127.0.0.1" }
  out(string.format("listening on http://%s:%d", conf.host or "127.0.0.1", server:port()))

  local function handler(method, path, headers, body)
    local r = sim:handle { method = method, path = path, headers = headers, body = body }
    if r.drop then return 0, {}, "" end
    if r.delay and r.delay > 0 then
      if server.supports_delay then return r.status, r.headers, r.body, r.delay / speed end
      wall_wait(r.delay / speed)
    end
    return r.status, r.headers, r.body
  end

  local stop = conf.stop or function() return c.signal() ~= nil end
  local ok, err = pcall(function()
    while not stop() do server:run(0.05, handler) end
  end)
  server:close()
  if not ok then error(err, 0) end
  return sim
end

return M
