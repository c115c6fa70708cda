--[[
A world of N canary pairs for the fleet and batching tests (tests/lua/test_fleet.lua,
test_batching.lua): for each i, services svc<i> (2 tasks) and svc<i>-canary (0) in cluster
production, target groups svc<i>-stable / svc<i>-canary, and load balancer lb<i> whose :80
listener forwards 100/0 between them. Image "api:broken" answers half its requests with 5xx.

  local W = require "fleet_world"
  W.scenario(n)                 → a checked scenario table (R.fresh takes it)
  W.shared_lb_scenario(n)       → the same pairs behind one load balancer, a listener each
  W.operation_of(req)           → "service.Operation" of a request the simulator received
  W.counting_client(sim, opts)  → received: the client pointed at `sim` in process, counting
                                  the requests it receives ("service.Operation" → n); opts:
                                  batching =, rate_limits = (aws.configure's), and
                                  answer(op, req, res, msg, kind) → what the client gets
  W.canary(i, image, opts)      → rollout.canary{...} of pair i (opts: steps=, bake=)
  W.weights(i)                  → { stable =, canary = } on lb<i>'s listener
  W.td(i)                       → "api:N", the task definition svc<i> runs
]]
local scenario = require "ecsplay.sim.scenario"
local rollout = require "ecsplay.rollout"
local gate = require "ecsplay.gate"
local ecs = require "ecsplay.ecs"
local elbv2 = require "ecsplay.elbv2"
local aws = require "ecsplay.aws"

local W = {}

-- Pair i's target groups svc<i>-stable / svc<i>-canary and services svc<i> (2 tasks) and
-- svc<i>-canary (0); listen(tg) makes the listener that forwards 100/0 between the groups.
local function add_pair(aws, i, net, listen)
  local tg = {}
  for _, side in ipairs { "stable", "canary" } do
    tg[side] = aws.elbv2.CreateTargetGroup { Name = ("svc%d-%s"):format(i, side), Protocol = "HTTP",
      Port = 8080, VpcId = "vpc-0sim", TargetType = "ip", HealthCheckPath = "/health",
      HealthCheckIntervalSeconds = 10, HealthyThresholdCount = 2 }.TargetGroups[1].TargetGroupArn
  end
  listen(tg, { { Type = "forward", ForwardConfig = { TargetGroups = {
    { TargetGroupArn = tg.stable, Weight = 100 }, { TargetGroupArn = tg.canary, Weight = 0 } } } } })
  for _, side in ipairs { "stable", "canary" } do
    aws.ecs.CreateService { cluster = "production", taskDefinition = "api:1",
      desiredCount = side == "stable" and 2 or 0,
      serviceName = side == "stable" and ("svc" .. i) or ("svc%d-canary"):format(i),
      launchType = "FARGATE", networkConfiguration = net,
      loadBalancers = { { targetGroupArn = tg[side], containerName = "api", containerPort = 8080 } } }
  end
end

local SUBNETS, SG = { "subnet-0sima", "subnet-0simb" }, { "sg-0sim" }
local function net() return { awsvpcConfiguration = { subnets = SUBNETS, securityGroups = SG } } end

local function new_lb(aws, name)
  return aws.elbv2.CreateLoadBalancer { Name = name, Subnets = SUBNETS, SecurityGroups = SG,
    Type = "application" }.LoadBalancers[1].LoadBalancerArn
end

function W.scenario(n)
  return scenario.check({
    seed = 7, world = "default",
    images = { ["api:broken"] = { error_rate = 0.5 } },
    setup = function(aws)
      for i = 1, n do
        add_pair(aws, i, net(), function(_, actions)
          aws.elbv2.CreateListener { LoadBalancerArn = new_lb(aws, "lb" .. i), Port = 80, Protocol = "HTTP",
            DefaultActions = actions }
        end)
      end
    end,
  }, "fleet_world")
end

-- The same n pairs behind ONE load balancer "lb1": pair i's listener is port 8000 + i, each
-- listener with 200 requests/s of its own.
function W.shared_lb_scenario(n)
  local listeners = {}
  for i = 1, n do listeners[8000 + i] = 200 end
  return scenario.check({
    seed = 11, world = "default", traffic = { rps = 200, listeners = listeners },
    setup = function(aws)
      local lb = new_lb(aws, "lb1")
      for i = 1, n do
        add_pair(aws, i, net(), function(_, actions)
          aws.elbv2.CreateListener { LoadBalancerArn = lb, Port = 8000 + i, Protocol = "HTTP",
            DefaultActions = actions }
        end)
      end
    end,
  }, "shared load balancer world")
end

-- "service.Operation" of a request as the simulator reads it: X-Amz-Target (JSON) or Action=
-- (query); the service is the signing name of the request's credential scope.
function W.operation_of(req)
  local target, auth
  for k, v in pairs(req.headers or {}) do
    if k:lower() == "x-amz-target" then target = v end
    if k:lower() == "authorization" then auth = v end
  end
  local service = (auth or ""):match("Credential=[^/]+/%d+/[^/]+/([^/]+)/") or "?"
  if target then return service .. "." .. target:match("%.([%w]+)$") end
  return service .. "." .. ((req.body or ""):match("Action=([%w]+)") or "?")
end

function W.counting_client(sim, opts)
  opts = opts or {}
  local received = {}
  local creds = sim:credentials()
  aws.configure {
    region = sim.world.region, endpoint_url = "https://simulator.ecsplay.invalid",
    access_key = creds.access_key, secret_key = creds.secret_key, batching = opts.batching,
    rate_limits = opts.rate_limits,
    transport = function(req)
      local op = W.operation_of(req)
      received[op] = (received[op] or 0) + 1
      if opts.answer then return opts.answer(op, req, sim:transport(req)) end
      return sim:transport(req)
    end,
  }
  return received
end

function W.canary(i, image, opts)
  opts = opts or {}
  local canary_tg = ("svc%d-canary"):format(i)
  return rollout.canary {
    name = "svc" .. i, cluster = "production", image = image or "api:v2", container = "api", canary_count = 1,
    stable = { service = "svc" .. i, target_group = ("svc%d-stable"):format(i) },
    canary = { service = ("svc%d-canary"):format(i), target_group = canary_tg },
    steps = opts.steps or { 50, 100 }, bake = opts.bake or "2m", interval = "1m",
    gates = opts.gates or {
      gate.alb_5xx_rate { target_group = canary_tg, below = 1.0 },
      gate.alb_latency { target_group = canary_tg, p = 99, below_ms = 300 },
    },
  }
end

function W.weights(i)
  local lb = elbv2.describe_load_balancers({ Names = { "lb" .. i } }).LoadBalancers[1]
  local l = elbv2.describe_listeners({ LoadBalancerArn = lb.LoadBalancerArn }).Listeners[1]
  local out = {}
  for _, tg in ipairs(l.DefaultActions[1].ForwardConfig.TargetGroups) do
    out[tg.TargetGroupArn:match("targetgroup/svc%d+%-(%a+)/")] = tg.Weight
  end
  return out
end

function W.td(i)
  local svc = ecs.describe_services({ cluster = "production", services = { "svc" .. i } }).services[1]
  return svc.taskDefinition:match("task%-definition/(.+)$")
end

return W
