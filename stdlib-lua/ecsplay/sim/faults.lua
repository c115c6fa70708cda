--[[
Injected faults (a scenario's `faults`, docs/scenario.md, and POST /_sim/faults at run time).

faults.new(world, list)  → F       list: faults already checked by scenario.lua
F:add(fault) / F:clear() / F:list()
F:match(service, operation, kind, world) → effect or nil, where effect =
   { error = {code=, message=, status=} | nil, delay = seconds | nil, drop = true | nil }

Windows are relative to world.start (the scenario's start): `at` = from that moment on,
`from`/`to` = [from, to). `times` = how many matching requests the fault hits before it
is spent. Several faults may match one request: delays add up, and the first fault in
list order with an error or a drop decides the answer; every matching fault counts a hit.
`region` limits a fault to one Region's world (world = the request's, sim/init.lua).

Rate faults (`rate` = N a `per` second or minute, `burst`): the account limit AWS enforces
with a token bucket of capacity `burst` refilled at N per period, one bucket per fault and
per world (AWS throttles each account in each Region). A request that finds a token takes it
and goes on; one that finds none is answered with the service's throttling error (the
fault's error= or status= if given) and takes nothing. hits counts the throttled requests,
seen every request the fault matched.

Codes: AWS's JSON services say ThrottlingException, its query services say Throttling, so a
scenario may write either and the request's protocol picks the spelling. A bare status
becomes the code AWS uses for it (503 → ServiceUnavailable, 500 → InternalFailure, ...).
The effect's error is an answer the simulator serves (encoded by the front end),
never raised: a plain table.
]]
local tables = require "ecsplay.util.tables"

local M = {}

local F = {}
F.__index = F

function M.new(world, list)
  local f = setmetatable({ world = world, items = {} }, F)
  for _, fault in ipairs(list or {}) do f:add(fault) end
  return f
end

function F:add(fault)
  local copy = tables.shallow_copy(fault)
  copy.hits = 0
  if copy.rate then copy.seen, copy.buckets = 0, {} end
  self.items[#self.items + 1] = copy
  return copy
end

function F:clear() self.items = {} end

function F:list() return self.items end

local function active(f, world)
  if f.times and f.hits >= f.times then return false end
  local rel = world.now - world.start
  if f.at and rel < f.at then return false end
  if f.from and rel < f.from then return false end
  if f.to and rel >= f.to then return false end
  return true
end

local THROTTLE = { json = "ThrottlingException", query = "Throttling" }
local UNAVAILABLE = { json = "ServiceUnavailableException", query = "ServiceUnavailable" }
local MESSAGES = {
  ThrottlingException = "Rate exceeded",
  Throttling = "Rate exceeded",
  ServiceUnavailableException = "Service Unavailable",
  ServiceUnavailable = "Service Unavailable",
  InternalFailure = "The request processing has failed because of an unknown error, exception or failure.",
}

-- A fault's code and status in the spelling of protocol `kind` ("json" or "query").
local function spelled(f, kind)
  local code, status = f.error, f.status
  if code == "ThrottlingException" or code == "Throttling" then
    code = THROTTLE[kind]
  elseif code == "ServiceUnavailableException" or code == "ServiceUnavailable" then
    code = UNAVAILABLE[kind]
  end
  if not code then
    if status == 503 then code = UNAVAILABLE[kind]
    elseif status and status >= 500 then code = "InternalFailure"
    elseif status == 403 then code = kind == "json" and "AccessDeniedException" or "AccessDenied"
    else code = THROTTLE[kind] end
  end
  if not status then
    if code == UNAVAILABLE[kind] then status = 503
    elseif code == "InternalFailure" or code:match("^Internal") then status = 500
    else status = 400 end
  end
  return code, status
end

--[[ The wire error for a fault, in the spelling of the request's protocol; query_code: the
     query spelling, which CloudWatch's JSON names in x-amzn-query-error (sim/frontend.lua). ]]
function M.error_for(f, kind)
  local code, status = spelled(f, kind == "query" and "query" or "json")
  return { code = code, status = status, query_code = (spelled(f, "query")),
    message = f.message or MESSAGES[code] or ("Simulated fault: " .. code) }
end

-- A rate fault's bucket in `world`: → true when a token was taken (the request goes on).
-- a client that waited exactly for its token is not refused for rounding: epoch seconds near
-- 1.8e9 carry about 2.4e-7 s of float precision, times the refill rate
local EPSILON = 1e-3

local function take_token(f, world)
  local key = (world.region or "") .. "/" .. (world.account or "")
  local b = f.buckets[key]
  local now = world.now
  if not b then
    b = { tokens = f.burst, last = now }
    f.buckets[key] = b
  end
  if now > b.last then
    b.tokens = math.min(f.burst, b.tokens + (now - b.last) * f.refill)
    b.last = now
  end
  f.seen = f.seen + 1
  if b.tokens >= 1 - EPSILON then
    b.tokens = b.tokens - 1
    return true
  end
  return false
end

function F:match(service, operation, kind, world)
  world = world or self.world
  local effect
  for _, f in ipairs(self.items) do
    if (f.service == "*" or f.service == service) and (f.operation == "*" or f.operation == operation)
        and (f.region == nil or f.region == world.region) and active(f, self.world)
        and not (f.rate and take_token(f, world)) then
      f.hits = f.hits + 1
      effect = effect or {}
      if f.delay then effect.delay = (effect.delay or 0) + f.delay end
      if not effect.error and not effect.drop then
        if f.drop then
          effect.drop = true
        elseif f.error or f.status or f.rate then
          effect.error = M.error_for(f, kind)
        end
      end
    end
  end
  return effect
end

return M
