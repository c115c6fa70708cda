--[[
Helpers for the rollout tests (tests/lua/test_rollout_*.lua): a fresh
in-process simulator per test (the same wiring as `ecsplay --simulate`, on a
virtual clock), running a playbook or a strategy against it and reading the
final world back through the ordinary primitives.

  local R = require "rollout_sim"
  local sim = R.fresh(scenario_table_or_nil)
  local code, err, report = R.playbook("playbooks/canary.lua", { image = "api:flaky" })
  local code, err, report = R.call(function() return rollout.canary{...} end)
  R.weights()            -> { ["api-stable"] = 100, ["api-canary"] = 0 } on the default rule
  R.service("api")       -> { desired=, running=, td="api:1", deployments= }
  R.bin                  -> the ecsplay binary (ECSPLAY_BIN or ./ecsplay)
Exit codes follow the runner (CLI.md): 0, 1 (failed and rolled back), 2 (bad
input with no change sent), 3 (rollback failed).
]]
local sched = require "ecsplay.sched"
local aws = require "ecsplay.aws"
local errors = require "ecsplay.errors"
local context = require "ecsplay.context"

local R = {}

R.bin = os.getenv("ECSPLAY_BIN") or "./ecsplay"

function R.fresh(scenario)
  local ecsplay = require "ecsplay"
  local sim = require("ecsplay.sim").new(scenario)
  sched.use_virtual_clock(sim.world.now)
  sim:set_clock(sched.now)
  context.simulated = true
  context.sim = sim
  local creds = sim:credentials()
  aws.configure {
    region = sim.world.region,
    endpoint_url = "https://simulator.ecsplay.invalid",
    access_key = creds.access_key, secret_key = creds.secret_key,
    transport = function(req) return sim:transport(req) end,
  }
  R.sim = sim
  return sim
end

local function classify(ok, err, before)
  if ok then return 0 end
  if errors.is(err, "rollback") then return 3 end
  if errors.is(err, { "bad_input", "validation" }) and aws.stats.mutating_calls == before then
    return 2
  end
  return 1
end

local function text(err)
  if err == nil then return nil end
  return errors.describe(err)
end

-- Runs fn (a strategy call); returns exit code, error text, result.
function R.call(fn)
  local before = aws.stats.mutating_calls
  local ok, res = pcall(fn)
  local code = classify(ok, res, before)
  return code, (not ok) and text(res) or nil, ok and res or nil, (not ok) and res or nil
end

-- Runs a playbook file in this process with these arguments.
function R.playbook(path, args)
  local ecsplay = require "ecsplay"
  ecsplay.args = args or {}
  local chunk = assert(loadfile(path))
  local saved = package.path
  package.path = (path:match("^(.*)/[^/]*$") or ".") .. "/?.lua;" .. package.path
  local before = aws.stats.mutating_calls
  local out = {}
  local real_print = print
  print = function(...) -- luacheck: ignore
    local parts = table.pack(...)
    for i = 1, parts.n do parts[i] = tostring(parts[i]) end
    out[#out + 1] = table.concat(parts, "\t")
  end
  local ok, res = pcall(chunk)
  print = real_print -- luacheck: ignore
  package.path = saved
  return classify(ok, res, before), (not ok) and text(res) or nil, table.concat(out, "\n")
end

-- The default world's weighted rule: { [tg name] = weight }.
function R.weights(rule_arn)
  local elbv2 = require "ecsplay.elbv2"
  local actions
  if rule_arn then
    actions = elbv2.describe_rules({ RuleArns = { rule_arn } }).Rules[1].Actions
  else
    local lb = elbv2.describe_load_balancers({ Names = { "web" } }).LoadBalancers[1]
    for _, l in ipairs(elbv2.describe_listeners({ LoadBalancerArn = lb.LoadBalancerArn }).Listeners) do
      if l.Port == 443 then
        for _, r in ipairs(elbv2.describe_rules({ ListenerArn = l.ListenerArn }).Rules) do
          if r.Priority == "10" then actions = r.Actions end
        end
      end
    end
  end
  local out = {}
  for _, a in ipairs(actions or {}) do
    if a.Type == "forward" and a.ForwardConfig then
      for _, tg in ipairs(a.ForwardConfig.TargetGroups) do
        out[tg.TargetGroupArn:match("targetgroup/([^/]+)/")] = tg.Weight
      end
    end
  end
  return out
end

-- The default world's listener (443 or 8443) default action: { [tg name] = weight }.
function R.listener_weights(port)
  local elbv2 = require "ecsplay.elbv2"
  local lb = elbv2.describe_load_balancers({ Names = { "web" } }).LoadBalancers[1]
  local out = {}
  for _, l in ipairs(elbv2.describe_listeners({ LoadBalancerArn = lb.LoadBalancerArn }).Listeners) do
    if l.Port == port then
      for _, a in ipairs(l.DefaultActions) do
        if a.ForwardConfig then
          for _, tg in ipairs(a.ForwardConfig.TargetGroups) do
            out[tg.TargetGroupArn:match("targetgroup/([^/]+)/")] = tg.Weight or 1
          end
        elseif a.TargetGroupArn then
          out[a.TargetGroupArn:match("targetgroup/([^/]+)/")] = 1
        end
      end
    end
  end
  return out
end

function R.service(name, cluster)
  local svc = require("ecsplay.ecs").describe_services({ cluster = cluster or "production",
    services = { name } }).services[1]
  return { desired = svc.desiredCount, running = svc.runningCount,
    td = svc.taskDefinition:match("task%-definition/(.+)$"), deployments = #svc.deployments, raw = svc }
end

function R.healthy(tg_name)
  local elbv2 = require "ecsplay.elbv2"
  local arn = elbv2.describe_target_groups({ Names = { tg_name } }).TargetGroups[1].TargetGroupArn
  local n = 0
  for _, d in ipairs(elbv2.describe_target_health({ TargetGroupArn = arn }).TargetHealthDescriptions) do
    if d.TargetHealth.State == "healthy" then n = n + 1 end
  end
  return n
end

-- Task definition revisions of a family (how many were registered).
function R.revisions(family)
  local res = require("ecsplay.ecs").list_task_definitions { familyPrefix = family }
  return #res.taskDefinitionArns
end

-- Lets simulated time pass (for settling after a rollback before reading counts).
-- A new revision of `base` (family:revision) with `image` on container `container`: its ARN.
function R.register_image(base, image, container)
  local ecs = require "ecsplay.ecs"
  local td = ecs.describe_task_definition({ taskDefinition = base }).taskDefinition
  for _, c in ipairs(td.containerDefinitions) do
    if c.name == container then c.image = image end
  end
  return ecs.register_task_definition(ecs.reuse(td)).taskDefinition.taskDefinitionArn
end

function R.settle(seconds) sched.sleep(seconds or 120) end

return R
