--[[
The clock `ecsplay sim serve` keeps, and tells every client on every answer.

  local clock = served_clock.new { sim = sim, mode = "speed" | "lockstep", speed = 1,
                                   lease = 10, monotonic = core.monotonic }
  clock:headers()        the response headers that carry the time (added to every answer)
  clock:heard(id)        a request from the ecsplay client `id`: it is busy (not waiting)
  clock:wait(id, t)      POST /_sim/wait → answer table, wall seconds to hold the answer
  clock:leave(id)        DELETE /_sim/wait: the client takes no further part
  clock:info()           GET /_sim/clock

Modes:
 - speed: simulated time = scenario start + wall seconds since the server started (or was
   reset) × speed, + whatever POST /_sim/advance added.
 - lockstep: simulated time stands still until every ecsplay client taking part waits;
   then it jumps to the earliest time one of them waits for. Clients that are not ecsplay
   (boto3, the AWS CLI) never hold time back: they see it stand still unless an ecsplay
   client waits or somebody POSTs /_sim/advance.

Clients: an ecsplay client names itself with the `x-ecsplay-client` header on the requests
it makes once it knows it talks to a simulator. Any request from it means it is busy;
POST /_sim/wait {"until": T} means it waits until simulated time T; DELETE /_sim/wait means
it is done. A client not heard from for `lease` wall seconds is forgotten, so a killed
client cannot stop time for good (a waiting client asks again at least every HOLD seconds,
so it is never forgotten while it waits).

Answers to /_sim/wait are held back by the server, not refused: until the time comes, at
most SPEED_HOLD (LOCKSTEP_HOLD) wall seconds, after which the client asks again (which also
keeps it from being forgotten). `sim serve` answers held waits at once whenever the clock
jumps (/_sim/advance, /_sim/reset, a lockstep advance). The body tells the time when the
request arrived; the x-ecsplay-sim-time header the time when the answer left.
]]
local timestamp = require "ecsplay.util.timestamp"

local M = {}

M.HEADER_TIME = "x-ecsplay-sim-time"
M.HEADER_MODE = "x-ecsplay-sim-mode"
M.HEADER_SPEED = "x-ecsplay-sim-speed"
M.HEADER_CLIENT = "x-ecsplay-client"
M.SPEED_HOLD = 2
M.LOCKSTEP_HOLD = 2
M.DEFAULT_LEASE = 10
-- a waiter counts as arrived within this much of its time (JSON and offsets round floats)
local EPSILON = 1e-6

local Clock = {}
Clock.__index = Clock

--[[ Takes over the simulator's clock source: scaled wall time (speed) or the scenario
     start (lockstep, where only sim:advance moves time). /_sim/reset restarts it. ]]
function M.new(o)
  local self = setmetatable({ sim = o.sim, mode = o.mode or "speed", speed = o.speed or 1,
    lease = o.lease or M.DEFAULT_LEASE, monotonic = o.monotonic, clients = {} }, Clock)
  local sim, start = self.sim, self.sim.world.now
  if self.mode == "lockstep" then
    sim:set_clock(function() return start end)
  else
    local wall0 = self.monotonic()
    sim:set_clock(function() return start + (self.monotonic() - wall0) * self.speed end)
    sim.on_reset = function() wall0 = self.monotonic() end
  end
  return self
end

function Clock:now() return self.sim:clock() end

function Clock:headers()
  local h = { [M.HEADER_TIME] = string.format("%.3f", self:now()), [M.HEADER_MODE] = self.mode }
  if self.mode == "speed" then h[M.HEADER_SPEED] = string.format("%.14g", self.speed) end
  return h
end

-- Forgets the clients not heard from for `lease` wall seconds.
function Clock:expire()
  local now = self.monotonic()
  for id, c in pairs(self.clients) do
    if now - c.heard > self.lease then self.clients[id] = nil end
  end
end

local function client_of(self, id)
  local c = self.clients[id]
  if not c then
    c = { id = id }
    self.clients[id] = c
  end
  c.heard = self.monotonic()
  return c
end

function Clock:heard(id)
  if type(id) ~= "string" or id == "" then return end
  local c = client_of(self, id)
  c.state, c.wake_at = "busy", nil
end

function Clock:leave(id)
  local known = self.clients[id] ~= nil
  self.clients[id] = nil
  -- the one client everybody else waited for may be the one leaving
  if known and self.mode == "lockstep" then self:advance_if_all_wait() end
  return known
end

-- Lockstep: when nobody is busy, time jumps to the earliest time a client waits for.
function Clock:advance_if_all_wait()
  self:expire()
  local earliest
  for _, c in pairs(self.clients) do
    if c.state ~= "waiting" then return end
    if not earliest or c.wake_at < earliest then earliest = c.wake_at end
  end
  local now = self:now()
  if earliest and earliest > now then self.sim:advance(earliest - now) end
end

--[[ A client waits until simulated time `wake_at`. → answer {now=, until=, reached=},
     hold (wall seconds to hold the answer back; 0 when the time has come). A reached
     waiter is busy again: it has work to do at that time. ]]
function Clock:wait(id, wake_at)
  local c
  if type(id) == "string" and id ~= "" then
    c = client_of(self, id)
    c.state, c.wake_at = "waiting", wake_at
  end
  local before = self:now()
  if self.mode == "lockstep" then self:advance_if_all_wait() end
  local now = self:now()
  if now >= wake_at - EPSILON then
    if c then c.state, c.wake_at = "busy", nil end
    return { now = now, ["until"] = wake_at, reached = true }, 0
  end
  -- a jump longer than sim.MAX_ADVANCE is made one step per request: ask again at once
  if self.mode == "lockstep" and now > before then
    return { now = now, ["until"] = wake_at, reached = false }, 0
  end
  local hold = M.LOCKSTEP_HOLD
  if self.mode == "speed" then
    hold = math.min(M.SPEED_HOLD, (wake_at - now) / self.speed + 0.001)
  end
  return { now = now, ["until"] = wake_at, reached = false }, hold
end

function Clock:info()
  self:expire()
  local clients, mono = {}, self.monotonic()
  for id, c in pairs(self.clients) do
    clients[#clients + 1] = { id = id, state = c.state, ["until"] = c.wake_at,
      heard = math.floor((mono - c.heard) * 1000 + 0.5) / 1000 }
  end
  table.sort(clients, function(a, b) return a.id < b.id end)
  local now, w = self:now(), self.sim.world
  return { now = now, iso = timestamp.iso8601(now, true), start = w.start, elapsed = now - w.start,
    mode = self.mode, speed = self.mode == "speed" and self.speed or nil, lease = self.lease,
    clients = clients }
end

return M
