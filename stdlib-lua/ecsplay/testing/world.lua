--[[
A simulated world for a test (docs/testing.md): one in-process simulator, the
AWS client pointed at it on a virtual clock (as `ecsplay --simulate` wires it,
cli/setup.lua), the calls the code under test made as the simulator received
them, and read-backs of its state through the ordinary primitives.

  local world = World.new(scenario)   scenario: nil (the default world), a
                                      scenario file path or a scenario table
  world:weights(rule) / :listener_weights(port) / :service(name, cluster) /
  world:healthy(tg) / :revisions(family) / :alarm(name) / :calls{...} /
  world:weight_changes(tg) /
  world:advance(d) / :now() / :activate()
  world:run(playbook, args) / world:rollout(fn) → result (testing/run.lua)
]]
local sched = require "ecsplay.sched"
local context = require "ecsplay.context"
local duration = require "ecsplay.duration"
local errors = require "ecsplay.errors"
local aws = require "ecsplay.aws.call"
local ecs = require "ecsplay.ecs"
local elbv2 = require "ecsplay.elbv2"
local cloudwatch = require "ecsplay.cloudwatch"
local sim_lib = require "ecsplay.sim"
local scenario_lib = require "ecsplay.sim.scenario"
local frontend = require "ecsplay.sim.frontend"
local exit = require "ecsplay.cli.exit"
local run = require "ecsplay.testing.run"

local World = {}
World.__index = World

local function lower_headers(h)
  local out = {}
  for k, v in pairs(h or {}) do out[tostring(k):lower()] = v end
  return out
end

-- The call as the simulator's front end reads it: service, AWS operation name, input.
local function decode(req)
  local headers = lower_headers(req.headers)
  local d = frontend.detect(headers, req.body or "")
  if not d then return {} end
  local op, params = d.codec.decode_request(d.model, req.body or "", headers)
  local region = (headers["authorization"] or ""):match("Credential=[^/,%s]+/%d+/([^/,%s]+)/")
  return { detected = d, service = d.service, region = region, operation = op, params = op and params or nil }
end

-- The error code AWS answered, read with the client's own codec (nil on success).
local function answered_error(rec, res)
  local d = rec.detected
  if not (d and rec.operation and res) or res.status < 300 then return nil end
  local ok, err = d.codec.parse_response(d.model, rec.operation, res.status, res.headers, res.body or "")
  if ok then return nil end
  return type(err) == "table" and err.code or nil
end

function World.new(scenario)
  if type(scenario) == "string" then scenario = scenario_lib.load(scenario) end
  local self = setmetatable({ calls_made = {}, quiet = 0 }, World)
  self.sim = sim_lib.new(scenario)
  self:activate()
  return self
end

--[[ The AWS client, the clock and ecsplay.context point at this world (what
     cli/setup.lua does for --simulate). Every method calls it first; the
     client and the clock are switched only when another world (or none) was
     active, so the clock never goes back while this world is in use. ]]
function World:activate()
  if self.base then return self.base:activate() end
  local sim = self.sim
  context.simulated = true
  context.sim = sim
  if run.active_world == self then return self end
  run.active_world = self
  sched.use_virtual_clock(sim.world.now)
  sim:set_clock(sched.now)
  local creds = sim:credentials()
  aws.configure {
    region = sim.world.region,
    endpoint_url = "https://simulator.ecsplay.invalid",
    access_key = creds.access_key, secret_key = creds.secret_key,
    transport = function(req) return self:transport(req) end,
  }
  return self
end

-- The transport: records the call (unless a helper of this file makes it) and hands it on.
function World:transport(req)
  if self.quiet > 0 then return self.sim:transport(req) end
  local rec = decode(req)
  rec.time = self.sim.world.now
  self.calls_made[#self.calls_made + 1] = rec
  local res, message, kind = self.sim:transport(req)
  rec.status = res and res.status or 0
  rec.error = answered_error(rec, res) or (not res and kind or nil)
  return res, message, kind
end

-- Runs fn(...) with this world active (in self.region's Region when this is
-- a view from in_region) and its calls left out of calls().
function World:reading(fn, ...)
  self:activate()
  self.quiet = self.quiet + 1
  local res
  if self.region then
    local session = aws.session { region = self.region }
    res = table.pack(pcall(session.run, session, fn, ...))
  else
    res = table.pack(pcall(fn, ...))
  end
  self.quiet = self.quiet - 1
  if not res[1] then error(res[2], 0) end
  return table.unpack(res, 2, res.n)
end

local function tg_name(arn) return arn:match("targetgroup/([^/]+)/") or arn end

local function forward_weights(actions)
  local out
  for _, a in ipairs(actions or {}) do
    if a.Type == "forward" then
      out = out or {}
      if a.ForwardConfig and a.ForwardConfig.TargetGroups then
        for _, tg in ipairs(a.ForwardConfig.TargetGroups) do
          out[tg_name(tg.TargetGroupArn)] = tg.Weight or 1
        end
      elseif a.TargetGroupArn then
        out[tg_name(a.TargetGroupArn)] = 1
      end
    end
  end
  return out
end

local function listeners()
  local out = {}
  for _, lb in ipairs(elbv2.all.describe_load_balancers {}) do
    for _, l in ipairs(elbv2.describe_listeners({ LoadBalancerArn = lb.LoadBalancerArn }).Listeners) do
      out[#out + 1] = l
    end
  end
  return out
end

-- The listener rules (not default rules) with a forward to two or more target groups.
local function weighted_rules()
  local found = {}
  for _, l in ipairs(listeners()) do
    for _, r in ipairs(elbv2.describe_rules({ ListenerArn = l.ListenerArn }).Rules) do
      local fw = not r.IsDefault and r.Actions
      for _, a in ipairs(fw or {}) do
        if a.Type == "forward" and a.ForwardConfig and #(a.ForwardConfig.TargetGroups or {}) > 1 then
          found[#found + 1] = r
          break
        end
      end
    end
  end
  return found
end

local function weights_of(rule)
  if rule == nil then
    local rules = weighted_rules()
    if #rules ~= 1 then
      local arns = {}
      for i, r in ipairs(rules) do arns[i] = r.RuleArn end
      error(errors.bad_input(string.format("world:weights(): %s; name the rule (or listener) ARN%s",
        #rules == 0 and "no listener rule has a weighted forward" or (#rules .. " rules have a weighted forward"),
        #arns > 0 and (": " .. table.concat(arns, ", ")) or ""), "rule"), 0)
    end
    return forward_weights(rules[1].Actions)
  end
  if rule:find(":listener/", 1, true) then
    local l = elbv2.describe_listeners({ ListenerArns = { rule } }).Listeners[1]
    return forward_weights(l and l.DefaultActions)
  end
  local r = elbv2.describe_rules({ RuleArns = { rule } }).Rules[1]
  return forward_weights(r and r.Actions)
end

-- { [target group name] = weight } of a rule or listener ARN, or of the world's only weighted rule.
function World:weights(rule) return self:reading(weights_of, rule) end

-- The default action's { [target group name] = weight } of the listener on `port`.
function World:listener_weights(port)
  return self:reading(function()
    for _, l in ipairs(listeners()) do
      if l.Port == port then return forward_weights(l.DefaultActions) end
    end
    error(errors.bad_input("world:listener_weights(): no listener on port " .. tostring(port), "port"), 0)
  end)
end

-- The { [target group name] = weight } of the rule whose host-header condition names `host`
-- exactly (case-insensitively), as routed by host name; an error when no rule or several do.
function World:host_weights(host)
  return self:reading(function()
    local found = {}
    for _, l in ipairs(listeners()) do
      for _, r in ipairs(elbv2.describe_rules({ ListenerArn = l.ListenerArn }).Rules) do
        for _, c in ipairs(r.Conditions or {}) do
          local values = c.Field == "host-header" and (c.HostHeaderConfig and c.HostHeaderConfig.Values or c.Values)
          for _, v in ipairs(values or {}) do
            if v:lower() == tostring(host):lower() then found[#found + 1] = r end
          end
        end
      end
    end
    if #found ~= 1 then
      error(errors.bad_input(string.format("world:host_weights(): %s names host %s",
        #found == 0 and "no listener rule" or (#found .. " listener rules"), tostring(host)), "host"), 0)
    end
    return forward_weights(found[1].Actions)
  end)
end

-- A service's counts and version, nil when there is none.
function World:service(name, cluster)
  return self:reading(function()
    local svc = ecs.describe_services({ cluster = cluster or "production", services = { name } }).services[1]
    if not svc then return nil end
    local td = ecs.describe_task_definition({ taskDefinition = svc.taskDefinition }).taskDefinition
    local first = td.containerDefinitions and td.containerDefinitions[1]
    return { desired = svc.desiredCount, running = svc.runningCount, pending = svc.pendingCount,
      status = svc.status, task_definition = svc.taskDefinition:match("task%-definition/(.+)$"),
      image = first and first.image, deployments = #(svc.deployments or {}), raw = svc }
  end)
end

-- How many targets of a target group (name or ARN) are healthy.
function World:healthy(target_group)
  return self:reading(function()
    local arn = target_group
    if not target_group:find("^arn:") then
      arn = elbv2.describe_target_groups({ Names = { target_group } }).TargetGroups[1].TargetGroupArn
    end
    local n = 0
    for _, d in ipairs(elbv2.describe_target_health({ TargetGroupArn = arn }).TargetHealthDescriptions) do
      if d.TargetHealth.State == "healthy" then n = n + 1 end
    end
    return n
  end)
end

-- How many revisions of a task definition family exist.
function World:revisions(family)
  return self:reading(function()
    return #ecs.all.list_task_definitions { familyPrefix = family }
  end)
end

-- A CloudWatch alarm's state, nil when there is none.
function World:alarm(name)
  return self:reading(function()
    local a = cloudwatch.describe_alarms({ AlarmNames = { name } }).MetricAlarms[1]
    return a and a.StateValue
  end)
end

--[[ The calls the code under test made, oldest first, filtered by
     { service=, operation= (AWS's name), region= }; each
     { service=, operation=, region=, params=, status=, error=, time= }. ]]
function World:calls(filter)
  filter = filter or {}
  local out = {}
  for _, c in ipairs(self.calls_made) do
    if (filter.service == nil or c.service == filter.service)
      and (filter.operation == nil or c.operation == filter.operation)
      and (filter.region == nil or c.region == filter.region) then
      out[#out + 1] = { service = c.service, operation = c.operation, region = c.region, params = c.params,
        status = c.status, error = c.error, time = c.time }
    end
  end
  return out
end

local function dirname(path) return path:match("^(.*)/[^/]*$") or "." end

local function stringify(args)
  local out = {}
  for k, v in pairs(args or {}) do out[tostring(k)] = tostring(v) end
  return out
end

-- Runs a playbook file in this world with `key=value` arguments (strings, as on the command line).
function World:run(path, args)
  local chunk, err = loadfile(path)
  if not chunk then
    local f = io.open(path, "r")
    if f then f:close() end
    local text = f and err or ("cannot read playbook " .. path .. ": no such file or not readable")
    return { world = self, reports = {}, log = {}, output = "", code = exit.BAD_INPUT,
      message = "ecsplay: " .. text, error = errors.bad_input(text, "playbook") }
  end
  return run.execute(self, chunk, { playbook = path, args = stringify(args), dir = dirname(path) })
end

-- Runs fn (a strategy call, or any code) in this world as the runner runs a playbook.
function World:rollout(fn)
  return run.execute(self, fn, { args = {} })
end

--[[ The weight the code under test gave a target group (name) in each
     ModifyRule / ModifyListener call with a weighted forward, oldest first:
     the steps a canary took, as the load balancer saw them. ]]
function World:weight_changes(target_group)
  local out = {}
  for _, c in ipairs(self.calls_made) do
    if c.service == "elbv2" and (c.operation == "ModifyRule" or c.operation == "ModifyListener") and c.params then
      local weights = forward_weights(c.params.Actions or c.params.DefaultActions)
      if weights and weights[target_group] then out[#out + 1] = weights[target_group] end
    end
  end
  return out
end

--[[ The same world read in another Region of a multi-Region scenario
     (`regions = {...}`): world:in_region("eu-west-1"):service("api"). Its
     read-backs go through an aws.session of that Region; calls{} and the
     rest are the world's own. ]]
function World:in_region(region)
  local world = self
  return setmetatable({ region = region, base = world }, { __index = function(_, name)
    local method = World[name]
    if method ~= nil then return method end
    return world[name]
  end, __newindex = world })
end

-- Lets simulated time pass: "5m", 300.
function World:advance(d)
  local seconds, problem = duration.parse(d)
  if not seconds then error(errors.bad_input("world:advance: " .. problem, "duration"), 0) end
  self:activate()
  sched.sleep(seconds)
  self.sim:sync()
  return self.sim.world.now
end

function World:now()
  self:activate()
  return self.sim:sync()
end

return World
