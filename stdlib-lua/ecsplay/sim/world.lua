--[[
The simulated world: one clock, one seed, the per-service state tables and the
tick loop that moves them through time.

Why a fixed tick: the world at virtual time t must not depend on how often a
client happened to look at it (a playbook polling every 5 s and boto3 polling
every 15 s must see the same deployment at minute 7). So state advances in
steps at absolute multiples of `tick` seconds, plus one-off events scheduled
with `world:at`, always in time order, whatever the request pattern.

Why hash-based noise: `world:noise(...)` is a pure function of the seed and the
keys given, so a metric sample for (target group, minute) is the same whichever
order GetMetricData calls arrive in, in process or over HTTP.
]]
local crypto = require "ecsplay.core.crypto"
local errors = require "ecsplay.errors"

local World = {}
World.__index = World

-- Service modules in tick order: tasks start before targets are checked,
-- traffic shifts before metrics are recorded.
local SERVICE_ORDER = { "ecs", "elbv2", "codedeploy", "cloudwatch" }

local DEFAULT_START = 1795687200 -- 2026-11-26T10:00:00Z

local BEHAVIOUR_DEFAULTS = {
  start = 30,                       -- seconds from launch to healthy
  error_rate = 0.001,               -- fraction of requests answered 5xx
  latency_ms = { p50 = 40, p99 = 150 },
  crash = nil,                      -- nil | "on_start" | "after"
  after = nil,                      -- seconds, with crash = "after"
}

-- FNV-1a + murmur3's fmix32 over a string (C: ecsplay.core.crypto): 32 bits that
-- spread (seed, keys) over [0,1), near keys giving far values.
local hash32 = crypto.fnv1a32

--[[ opts: start (epoch seconds), seed, region, account (one world is one Region of one
     account: its ARNs carry both; sim/init.lua keeps one per Region and account), tick (seconds),
     images (array of {key=, behaviour=} in lookup order), traffic ({rps=}) ]]
function World.new(opts)
  opts = opts or {}
  local w = setmetatable({}, World)
  w.start = opts.start or DEFAULT_START
  w.now = w.start
  w.seed = opts.seed or 1
  w.region = opts.region or "us-east-1"
  w.account = opts.account or "123456789012"
  w.tick = opts.tick or 5
  w.next_tick = w.start + w.tick
  w.images = opts.images or {}
  w.traffic = opts.traffic or { rps = 200 }
  w.scenario = opts.scenario or {}
  w.directory = opts.directory -- the simulator serving it (its key pairs, the other worlds)
  w.svc = {}        -- name -> service module
  w.state = {}      -- name -> that service's state table
  w.order = {}
  w.events = {}     -- one-off events: { t=, seq=, fn= }, kept sorted
  w.event_seq = 0
  w.counter = 0
  -- values computed from the state and kept to be read again (sim/cloudwatch/alb.lua's
  -- synthesised minutes): not state, so reading metrics changes nothing a dump shows
  w.memo = {}
  return w
end

-- Registers a service module ({name=, init=, tick=, ops=}) and builds its state.
function World:add_service(mod)
  assert(type(mod) == "table" and mod.name, "service module needs a name")
  self.svc[mod.name] = mod
  self.state[mod.name] = mod.init and mod.init(self) or {}
  self.order = {}
  for _, name in ipairs(SERVICE_ORDER) do
    if self.svc[name] then self.order[#self.order + 1] = name end
  end
  for name in pairs(self.svc) do
    local known = false
    for _, n in ipairs(SERVICE_ORDER) do if n == name then known = true end end
    if not known then self.order[#self.order + 1] = name end
  end
end

-- Schedules fn(world, t) to run when the clock reaches t (same t: in call order).
function World:at(t, fn)
  self.event_seq = self.event_seq + 1
  local ev = { t = t, seq = self.event_seq, fn = fn }
  local events = self.events
  local i = #events
  while i >= 1 and (events[i].t > t or (events[i].t == t and events[i].seq > ev.seq)) do
    events[i + 1] = events[i]
    i = i - 1
  end
  events[i + 1] = ev
  return ev
end

function World:cancel(ev)
  for i, e in ipairs(self.events) do
    if e == ev then table.remove(self.events, i) return true end
  end
  return false
end

-- Moves the world to time t: due events and ticks run in time order
-- (an event due at the same second as a tick runs first).
function World:advance(t)
  if t <= self.now then return end
  while true do
    local ev = self.events[1]
    local next_t = self.next_tick
    if ev and ev.t <= next_t then next_t = ev.t end
    if next_t > t then break end
    self.now = next_t
    if ev and ev.t == next_t then
      table.remove(self.events, 1)
      ev.fn(self, next_t)
    else
      self.next_tick = self.next_tick + self.tick
      for _, name in ipairs(self.order) do
        local mod = self.svc[name]
        if mod.tick then mod.tick(self, next_t) end
      end
    end
  end
  self.now = t
end

-- "\0k1\0k2..." for the keys: the tail of the string noise hashes after the seed.
local function keys_tail(...)
  local n = select("#", ...)
  if n == 0 then return "" end
  local parts = { ... }
  for i = 1, n do parts[i] = tostring(parts[i]) end
  return "\0" .. table.concat(parts, "\0", 1, n)
end

-- Deterministic noise in [0, 1) from the seed and any keys: the hash of "seed\0k1\0k2...".
function World:noise(...)
  return hash32(tostring(self.seed) .. keys_tail(...)) / 4294967296.0
end

--[[ Deterministic standard-normal sample (Box-Muller over two noise draws: noise("n1", ...)
     and noise("n2", ...), the keys' string built once for both; ALB metrics draw one per
     sample). ]]
function World:normal(...)
  local seed, tail = tostring(self.seed), keys_tail(...)
  local u1 = math.max(hash32(seed .. "\0n1" .. tail) / 4294967296.0, 1e-12)
  local u2 = hash32(seed .. "\0n2" .. tail) / 4294967296.0
  return math.sqrt(-2 * math.log(u1)) * math.cos(2 * math.pi * u2)
end

-- A fresh identifier: deterministic for the same sequence of calls.
function World:id(prefix, len)
  self.counter = self.counter + 1
  local hex = string.format("%08x%08x%08x%08x",
    hash32(self.seed .. ":a:" .. self.counter),
    hash32(self.seed .. ":b:" .. self.counter),
    hash32(self.seed .. ":c:" .. self.counter),
    hash32(self.seed .. ":d:" .. self.counter))
  hex = hex:sub(1, len or 32)
  return prefix and (prefix .. hex) or hex
end

-- A request id in AWS's UUID layout.
function World:request_id()
  local h = self:id(nil, 32)
  return string.format("%s-%s-%s-%s-%s", h:sub(1, 8), h:sub(9, 12), h:sub(13, 16),
    h:sub(17, 20), h:sub(21, 32))
end

function World:arn(service, resource)
  return string.format("arn:aws:%s:%s:%s:%s", service, self.region, self.account, resource)
end

--[[ Raises the error an operation answers with: an AWS-shaped error (kind
     "service"), which the front end turns into the service's wire error
     (JSON __type or XML <Error>). sim_error marks it as the simulator's own
     answer (not a bug in an operation) for the service modules and tests. ]]
function World:fail(code, message, status)
  local e = errors.new("service", { code = code, message = message, status = status or 400 })
  e.sim_error = true
  error(e, 0)
end

-- Is e an answer an operation gave on purpose (world:fail), as opposed to a bug?
function World:is_error(e)
  return type(e) == "table" and e.sim_error == true
end

--[[ The error a behaviour function's failure becomes: kind scenario, with the
     scenario file and line where it failed (from Lua's message, else where
     the function is defined), so the run names the line to fix. ]]
local function behaviour_failed(fn, err, what)
  local msg = type(err) == "string" and err or errors.describe(err)
  local file, line, rest = msg:match("^(.-):(%d+): (.*)$")
  if not file then
    local info = debug.getinfo(fn, "S")
    file, line, rest = info.short_src, info.linedefined, msg
  end
  return errors.new("scenario", { code = "BehaviourFailed", file = file, line = tonumber(line),
    message = string.format("%s:%s: scenario behaviour %s failed: %s", file, line, what or "function", rest) })
end

--[[ Evaluates a behaviour value: a constant, or a function of ctx (`what`
     names it in an error: "error_rate of api:v2"). A function that raises
     breaks the rehearsal: the first failure is raised as a scenario error
     and kept in world.failure (the run fails with it); afterwards functions
     give nil (the callers' defaults), so the world can still move while the
     run rolls back. ]]
function World:eval(value, ctx, what)
  if type(value) ~= "function" then return value end
  if self.failure then return nil end
  local ok, res = pcall(value, ctx)
  if ok then return res end
  self.failure = behaviour_failed(value, res, what)
  error(self.failure, 0)
end

--[[ The behaviour table of a container image: the first matching entry of
     world.images (exact key, or a Lua pattern when the key starts with "~"),
     over the defaults. Returned values may still be functions of ctx; read
     them with world:eval(b.error_rate, ctx). ctx = { t=, weight=, now= }. ]]
function World:behaviour(image)
  local found
  for _, entry in ipairs(self.images) do
    local key = entry.key
    if key:sub(1, 1) == "~" then
      if image:match(key:sub(2)) then found = entry.behaviour break end
    elseif key == image then
      found = entry.behaviour
      break
    end
  end
  local b = {}
  for k, v in pairs(BEHAVIOUR_DEFAULTS) do b[k] = v end
  if found then for k, v in pairs(found) do b[k] = v end end
  return b
end

World.DEFAULT_START = DEFAULT_START
World.BEHAVIOUR_DEFAULTS = BEHAVIOUR_DEFAULTS
return World
