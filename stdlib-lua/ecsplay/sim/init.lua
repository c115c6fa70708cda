--[[
The simulator as a transport: a signed, serialized AWS request in, AWS's answer out.

sim.new(scenario, opts) → sim
   scenario: a table (raw or from scenario.load) or nil for the default world
   opts.warn(message): where warnings go (default: stderr)
   opts.no_auth: accept any request, signed or not (--no-auth)
   opts.services: service modules to load (default all four; tests pass {} to use stand-ins)
sim:handle{method=, path= (with query), headers= (any case), body=}
   → {status=, headers=, body=, delay=seconds|nil, drop=true|nil}
   status 0 with drop=true: the connection is to be dropped (no response).
   delay: the response is to be held back this many simulated seconds (faults).
sim:set_clock(fn)       the time source (virtual now in process; scaled wall time in serve)
sim:set_auth_clock(fn)  the clock X-Amz-Date is checked against (default: the sim clock)
sim:clock() / sim:sync()  read the clock / bring the world up to it
sim:advance(seconds)    jump the clock forward (adds to an offset on top of the time source),
                        at most sim.MAX_ADVANCE (six hours) per call: a longer jump (a lockstep
                        client waiting days ahead) is done six hours per call, the caller asking
                        again, so other requests are served in between
sim:call(service, Op, params, caller) → output (validated; raises on error; used by setup)
sim.world, sim.faults, sim.auth, sim.scenario

Every failure inside an operation becomes an AWS error: world:fail → that code and status;
anything else (a bug) → 500 InternalFailure with the request id, never a crash.
]]
local World = require "ecsplay.sim.world"
local scenario_lib = require "ecsplay.sim.scenario"
local frontend = require "ecsplay.sim.frontend"
local auth_lib = require "ecsplay.sim.auth"
local faults_lib = require "ecsplay.sim.faults"
local control = require "ecsplay.sim.control"
local default_world = require "ecsplay.sim.default_world"
local regions = require "ecsplay.sim.regions"
local sim_sts = require "ecsplay.sim.sts"
local sim_ecs = require "ecsplay.sim.ecs"
local sim_elbv2 = require "ecsplay.sim.elbv2"
local sim_codedeploy = require "ecsplay.sim.codedeploy"
local sim_cloudwatch = require "ecsplay.sim.cloudwatch"
local model_lib = require "ecsplay.aws.model"
local validate = require "ecsplay.aws.validate"
local sched = require "ecsplay.sched"
local tables = require "ecsplay.util.tables"
local errors = require "ecsplay.errors"

local M = {}
local Sim = {}
Sim.__index = Sim

M.SERVICE_MODULES = { "ecs", "elbv2", "codedeploy", "cloudwatch" }
local SERVICES = { ecs = sim_ecs, elbv2 = sim_elbv2, codedeploy = sim_codedeploy, cloudwatch = sim_cloudwatch }

local function lower_headers(h)
  local out = {}
  for k, v in pairs(h or {}) do out[tostring(k):lower()] = v end
  return out
end

local function stderr_warn(msg) io.stderr:write("warning: ", msg, "\n") end

function M.new(scenario, opts)
  opts = opts or {}
  local sc = scenario_lib.check(scenario or {}, type(scenario) == "table" and scenario.path or "scenario")
  local self = setmetatable({ scenario = sc, opts = opts, warn = opts.warn or stderr_warn }, Sim)
  self:build()
  return self
end

-- Builds (or rebuilds, for /_sim/reset) the worlds from the scenario: one per Region and
-- account (sim/regions.lua), sim.world the primary one.
function Sim:build()
  local sc = self.scenario
  self.offset, self.rid_counter, self.failure_raised = 0, 0, nil
  local start = sc.start or World.DEFAULT_START
  if not self.clock_set then self.base_clock = function() return start end end
  local ao = regions.auth_options(sc)
  self.auth = auth_lib.new { keys = sc.keys, no_auth = self.opts.no_auth, region = ao.region,
    regions = ao.regions, accounts = ao.accounts, account = ao.account,
    now = function() return (self.auth_clock or function() return self:clock() end)() end }
  regions.build_all(self)
  self.faults = faults_lib.new(self.world, sc.faults)
end

--[[ One world (sim/regions.lua calls it): o = { region=, account=, seed=, at = the time it
     joins (nil: the scenario's start) }. While it is built it is sim.world, so the default
     world and the setup create their resources in it. ]]
function Sim:build_world(o)
  local sc = self.scenario
  local images = {}
  for _, e in ipairs(sc.image_list) do images[#images + 1] = e end
  if sc.world == "default" then
    for _, e in ipairs(default_world.images) do images[#images + 1] = e end
  end
  local world = World.new { start = sc.start, seed = o.seed, images = images, region = o.region,
    account = o.account, traffic = sc.traffic or { rps = 200 }, scenario = sc, directory = self }
  local primary = self.world
  self.world = world
  local at = o.at or world.start
  if sc.world == "default" then
    -- built before the start and advanced to it, so the run begins steady
    world.now = at - default_world.BUILD_LEAD
    world.next_tick = world.now + world.tick
  elseif at > world.now then
    world.now, world.next_tick = at, at + world.tick
  end
  for _, name in ipairs(self.opts.services or M.SERVICE_MODULES) do
    world:add_service(SERVICES[name])
  end
  if sc.world == "default" then
    default_world.build(self)
    world:advance(at)
  end
  if sc.setup then self:run_setup(sc.setup) end
  self.world = primary or world
  return world
end

-- /_sim/reset: a fresh world; the owner of the clock (serve) restarts it through on_reset.
function Sim:reset()
  if self.on_reset then self.on_reset() end
  self:build()
end

function Sim:set_clock(fn) self.base_clock, self.clock_set = fn, true end
function Sim:set_auth_clock(fn) self.auth_clock = fn end
function Sim:clock() return self.base_clock() + self.offset end

function Sim:sync()
  regions.sync(self, self:clock())
  return self.world.now
end

-- The longest clock jump done in one call: the world ticks every 5 s, so six hours are 4,320
-- ticks (about half a second for the default world) while other requests wait.
Sim.MAX_ADVANCE = 21600

function Sim:advance(seconds)
  if not (seconds >= 0) then return self.world.now end
  self.offset = self.offset + math.min(seconds, self.MAX_ADVANCE)
  return self:sync()
end

function Sim:service_module(service)
  return self.world.svc[service] or (service == "sts" and sim_sts or nil)
end

function Sim:has_op(service, op)
  local mod = self:service_module(service)
  return mod ~= nil and mod.ops ~= nil and mod.ops[op] ~= nil
end

-- Direct operation call (setup, the default world, control endpoints): validated input,
-- copied in and out so callers and state never share tables. Raises world:fail's error.
function Sim:call(service, op, params, caller)
  local m = model_lib.load(service)
  local real = model_lib.operation(m, op)
  if not real then error(string.format("%s has no operation %q", service, tostring(op)), 2) end
  op = real.name
  params = tables.copy(params or {})
  validate.input(m, op, params)
  local mod = self:service_module(service)
  if not (mod and mod.ops and mod.ops[op]) then
    error(string.format("the simulator does not implement %s %s%s", service, op,
      mod and "" or string.format(" (service %s is not loaded)", service)), 2)
  end
  return tables.copy(mod.ops[op](self.world, params, caller or "setup") or {})
end

--[[ A failure of the scenario's setup as the scenario error it is (exit 2, like every
     other problem of a scenario): `msg` is Lua's "file:line: text" when it names the
     setup's line. Errors that are not the scenario's (an interrupt) pass through. ]]
local function setup_failed(err, path)
  if errors.is_error(err) and err.kind ~= "service" and err.kind ~= "validation" then return err end
  local msg = errors.describe(err)
  local file, line, rest = msg:match("^([^\n]-):(%d+): (.*)$")
  rest = rest or msg
  if not rest:find("^scenario setup") then rest = "scenario setup failed: " .. rest end
  return errors.new("scenario", { code = "SetupFailed", file = file or path, line = tonumber(line),
    message = file and string.format("%s:%s: %s", file, line, rest) or (path .. ": " .. rest) })
end

-- scenario.setup(aws): aws.ecs.create_service{...}; errors point at the setup's own line.
function Sim:run_setup(setup)
  local sim = self
  local aws = setmetatable({}, { __index = function(t, service)
    local ok, m = pcall(model_lib.load, service)
    if not ok then error(string.format("scenario setup: unknown service aws.%s", tostring(service)), 2) end
    local proxy = setmetatable({}, { __index = function(p, name)
      local opdef = model_lib.operation(m, name)
      if not opdef then
        error(string.format("scenario setup: aws.%s.%s is not an operation", service, tostring(name)), 2)
      end
      local fn = function(params)
        local ok2, res = pcall(sim.call, sim, service, opdef.name, params, "setup")
        if ok2 then return res end
        if errors.is(res, "interrupted") then error(res, 0) end
        local msg = type(res) == "table" and res.code and (res.code .. ": " .. tostring(res.message))
          or errors.describe(res)
        error(string.format("scenario setup: %s %s failed: %s", service, opdef.name, msg), 2)
      end
      rawset(p, name, fn)
      return fn
    end })
    rawset(t, service, proxy)
    return proxy
  end })
  local ok, err = pcall(setup, aws, { region = self.world.region, account = self.world.account })
  if not ok then error(setup_failed(err, self.scenario.path or "scenario"), 0) end
end

-- Deterministic request ids: their own counter, so how often a client polls never
-- shifts the resource ids the world hands out.
function Sim:request_id()
  self.rid_counter = self.rid_counter + 1
  local w = self.world
  local n = self.rid_counter
  local parts = {}
  for k = 1, 4 do parts[k] = string.format("%08x", math.floor(w:noise("rid", k, n) * 4294967296)) end
  local h = table.concat(parts)
  return string.format("%s-%s-%s-%s-%s", h:sub(1, 8), h:sub(9, 12), h:sub(13, 16), h:sub(17, 20), h:sub(21, 32))
end

local function header_get(h, name)
  local lname = name:lower()
  for k, v in pairs(h or {}) do if k:lower() == lname then return v end end
  return nil
end

local function finish(status, headers, body, request_id)
  headers = headers or {}
  if not header_get(headers, "x-amzn-requestid") then headers["x-amzn-RequestId"] = request_id end
  return { status = status, headers = headers, body = body or "" }
end

local INTERNAL = "The request processing has failed because of an unknown error, exception or failure."

function Sim:dispatch(req, headers, rid)
  local d, derr = frontend.detect(headers, req.body)
  if not d then return finish(frontend.error_response(nil, derr, rid)) end
  local aerr, who = self.auth:verify({ method = req.method, path = req.path, headers = headers,
    body = req.body or "" }, d.kind)
  if aerr then return finish(frontend.error_response(d, aerr, rid)) end
  -- the Region of the credential scope and the key's account pick the world (sim/regions.lua)
  local world = regions.world_for(self, who)
  world.caller_key = who and who.access_key
  local op, params = d.codec.decode_request(d.model, req.body or "", headers)
  if not op then return finish(frontend.error_response(d, params, rid)) end
  params = params or {}
  local verr = frontend.validate(d.model, d.kind, op, params)
  if verr then return finish(frontend.error_response(d, verr, rid)) end
  local opdef = model_lib.operation(d.model, op)
  if opdef and opdef.input then frontend.strip_unknown(d.model, opdef.input, params) end
  local denied = frontend.authorize(self, d, op, params, world)
  if denied then return finish(frontend.error_response(d, denied, rid)) end

  local effect = self.faults:match(d.service, op, d.kind, world)
  local delay = effect and effect.delay
  if effect and effect.drop then return { status = 0, drop = true, headers = {}, body = "", delay = delay } end
  if effect and effect.error then
    local r = finish(frontend.error_response(d, effect.error, rid))
    r.delay = delay
    return r
  end
  -- after faults, so a scenario can fault an operation whatever the simulator implements
  local mod = self:service_module(d.service)
  if not (mod and mod.ops and mod.ops[op]) then
    local code = d.kind == "json" and "UnknownOperationException" or "InvalidAction"
    local r = finish(frontend.error_response(d, { code = code, status = 400, query_code = "InvalidAction",
      message = string.format("The ecsplay simulator does not implement %s %s", d.service, op) }, rid))
    r.delay = delay
    return r
  end

  local trace
  local ok, out = xpcall(mod.ops[op], function(e)
    if not world:is_error(e) then trace = debug.traceback(errors.describe(e), 2) end
    return e
  end, world, params, nil)
  local r
  if ok then
    r = finish(d.codec.encode_response(d.model, op, out or {}, rid))
  elseif self.world:is_error(out) then
    r = finish(frontend.error_response(d, { code = out.code, message = out.message, status = out.status }, rid))
  else
    self.warn(string.format("simulator: internal error in %s %s [request %s]: %s", d.service, op, rid,
      trace or errors.describe(out)))
    r = finish(frontend.error_response(d, { code = "InternalFailure", status = 500,
      message = INTERNAL .. " (simulator: " .. errors.describe(out):gsub("\n.*", "") .. ")" }, rid))
  end
  r.delay = delay
  return r
end

function Sim:handle(req)
  local headers = lower_headers(req.headers)
  local path = req.path or "/"
  local ok, res = pcall(function()
    self:sync()
    if path == "/_sim" or path:sub(1, 6) == "/_sim/" then
      return control.handle(self, req.method or "GET", path, headers, req.body or "")
    end
    return self:dispatch(req, headers, self:request_id())
  end)
  if ok then return res end
  -- last line of defence: a bug outside an operation (in a codec, the clock, a tick)
  local rid = self:request_id()
  self.warn(string.format("simulator: internal error [request %s]: %s", rid, errors.describe(res)))
  local kind = (headers["x-amz-target"] or (headers["content-type"] or ""):find("json")) and "json" or "query"
  return finish(frontend.bare_error(kind, "InternalFailure", INTERNAL, 500, rid))
end

-- The key pair an in-process client signs with: the scenario's first (sorted) key of the
-- default account, or the default pair.
function Sim:credentials()
  local keys = self.scenario.keys or auth_lib.DEFAULT_KEYS
  local accounts = self.scenario.key_accounts or {}
  local default = regions.default_account(self.scenario)
  local names = {}
  for k in pairs(keys) do
    if (accounts[k] or default) == default then names[#names + 1] = k end
  end
  if #names == 0 then for k in pairs(keys) do names[#names + 1] = k end end
  table.sort(names)
  return { access_key = names[1], secret_key = keys[names[1]] }
end

--[[ aws.lua's transport under --simulate: req = {method=, url=, headers=, body=} →
     {status=, headers=, body=} | nil, message, kind. Injected delays sleep on the
     scheduler's (virtual) clock; an injected drop looks like a reset connection. ]]
function Sim:transport(req)
  local path = (req.url or "/"):match("^%a[%w+.-]*://[^/?#]*(.*)$") or req.url or "/"
  if path == "" or path:sub(1, 1) == "?" then path = "/" .. path end
  local r = self:handle { method = req.method or "POST", path = path, headers = req.headers, body = req.body }
  -- a scenario's behaviour function failed (world:eval): the run fails with that
  -- error, once, rather than reading a 500 or metrics the failure left at zero
  local failure = regions.failure(self)
  if failure and not self.failure_raised then
    self.failure_raised = true
    error(failure, 0)
  end
  if r.delay and r.delay > 0 then sched.sleep(r.delay) end
  if r.drop then
    return nil, "connection reset by peer (fault injected by the simulator)", "reset"
  end
  return { status = r.status, headers = lower_headers(r.headers), body = r.body }
end

M.Sim = Sim
return M
