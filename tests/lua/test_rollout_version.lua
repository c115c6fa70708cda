-- Version selection, one rule for every strategy (rollout/version.lua): image= and
-- task_definition= together, or a task definition or container that does not exist, is bad
-- input (exit 2) before any change; task_definition takes a family, family:revision or an ARN,
-- resolved to the ARN before any change. Every case reads the world back.
local T = require "harness"
local R = require "rollout_sim"
local rollout, gate = require "ecsplay.rollout", require "ecsplay.gate"
local ecs = require "ecsplay.ecs"

local HOME = { ["api-stable"] = 100, ["api-canary"] = 0 }

-- Each strategy's smallest options for the default world, without image/task_definition.
local STRATEGIES = {
  { "canary", function(o) return rollout.canary(o) end, { steps = { 50, 100 }, bake = "1m" } },
  { "linear", function(o) return rollout.linear(o) end, { step = 50, every = "1m" } },
  { "rolling", function(o) return rollout.rolling(o) end, { service = "api" } },
  { "blue_green", function(o) return rollout.blue_green(o) end, { keep_blue = "1m" } },
  { "codedeploy", function(o) return rollout.codedeploy(o) end,
    { config = "CodeDeployDefault.ECSAllAtOnce" }, family = "app" },
  { "ecs_native", function(o) return rollout.ecs_native(o) end,
    { service = "api", alternate_target_group = "api-canary" } },
}

local function with(base, extra)
  local o = {}
  for k, v in pairs(base) do o[k] = v end
  for k, v in pairs(extra) do o[k] = v end
  return o
end

-- The default world as it was before any rollout: nothing registered, traffic and services home.
local function unchanged()
  T.eq(R.revisions("api"), 1, "no api task definition registered")
  T.eq(R.revisions("app"), 1, "no app task definition registered")
  T.eq(R.weights(), HOME, "rule weights")
  T.eq(R.listener_weights(443), { ["app-blue"] = 1 }, "listener weights")
  local api, canary = R.service("api"), R.service("api-canary")
  T.eq({ api.td, api.desired, api.deployments }, { "api:1", 4, 1 })
  T.eq({ canary.td, canary.desired }, { "api:1", 0 })
  T.eq(R.service("app").td, "app:1")
  T.eq(R.service("api").raw.deploymentConfiguration.strategy or "ROLLING", "ROLLING")
  local cd = require("ecsplay.codedeploy").list_deployments { applicationName = "app-deploy",
    deploymentGroupName = "app-dg" }
  T.eq(#cd.deployments, 0, "no CodeDeploy deployment")
end

for _, s in ipairs(STRATEGIES) do
  local name, fn, base = s[1], s[2], s[3]
  local family = s.family or "api"
  T.test(name .. ": image= and task_definition= together: exit 2 naming both, nothing changed", function()
    R.fresh()
    local code, err = R.call(function()
      return fn(with(base, { image = family .. ":v2", task_definition = family .. ":1" }))
    end)
    T.eq(code, 2, err)
    T.ok(err:find("rollout." .. name .. ": image:", 1, true), err)
    T.ok(err:find("task_definition=", 1, true), err)
    unchanged()
  end)

  T.test(name .. ": a task definition or a container that does not exist: exit 2, nothing changed", function()
    R.fresh()
    local code, err = R.call(function() return fn(with(base, { task_definition = family .. ":99" })) end)
    T.eq(code, 2, err)
    T.ok(err:find("task_definition: task definition `" .. family .. ":99` does not exist", 1, true), err)
    code, err = R.call(function() return fn(with(base, { image = family .. ":v2", container = "web" })) end)
    T.eq(code, 2, err)
    T.ok(err:find("container: task definition " .. family .. ":1 has no container `web`", 1, true), err)
    code, err = R.call(function() return fn(with(base, {})) end)
    T.eq(code, 2, err)
    T.ok(err:find("image: required", 1, true), err)
    unchanged()
  end)
end

-- api:2 = api:1 with image api:v2, registered outside the rollout.
local function register_v2()
  local td = ecs.describe_task_definition({ taskDefinition = "api:1" }).taskDefinition
  td.containerDefinitions[1].image = "api:v2"
  return ecs.register_task_definition(ecs.reuse(td)).taskDefinition.taskDefinitionArn
end

T.test("canary: task_definition = \"api:2\" (family:revision) promotes end to end", function()
  R.fresh()
  local arn = register_v2()
  local code, err, report = R.call(function()
    return rollout.canary { task_definition = "api:2", container = "api", steps = { 25, 100 }, bake = "3m",
      gates = { gate.alb_5xx_rate { target_group = "api-canary", below = 1.0 } } }
  end)
  T.eq(code, 0, err)
  T.eq(report.task_definition, arn, "resolved to the ARN")
  T.eq(#report.steps, 2)
  T.eq(R.revisions("api"), 2, "nothing registered by the rollout")
  T.eq(R.weights(), HOME)
  local api, canary = R.service("api"), R.service("api-canary")
  T.eq({ api.td, api.desired, api.running, api.deployments }, { "api:2", 4, 4, 1 })
  T.eq(canary.desired, 0)
end)

T.test("canary: task_definition = \"api\" (a family) deploys its latest revision", function()
  R.fresh()
  local arn = register_v2()
  local code, err, report = R.call(function()
    return rollout.canary { task_definition = "api", steps = { 100 }, bake = "1m" }
  end)
  T.eq(code, 0, err)
  T.eq(report.task_definition, arn)
  T.eq(R.service("api").td, "api:2")
end)

T.test("playbooks/canary.lua: task_definition= instead of image=; both: exit 2", function()
  local out, rc = T.sh(R.bin .. " --simulate playbooks/canary.lua task_definition=api:1 bake=2m")
  T.eq(rc, 0, out)
  T.ok(out:find("canary: succeeded", 1, true), out)
  out, rc = T.sh(R.bin .. " --simulate playbooks/canary.lua task_definition=api:1 image=api:v2")
  T.eq(rc, 2, out)
  T.ok(out:find("image=", 1, true) and out:find("task_definition=", 1, true), out)
end)

T.test("a rollback that cannot complete: exit 3, the error says what is left", function()
  -- the gate fails at the 50% step and, from that moment, every ModifyRule is refused: the
  -- traffic cannot go home, so the rollback stops there and leaves the canary running
  local sim = R.fresh()
  local broken = gate.check("fails at 50%", function(ctx)
    if ctx.weight < 50 then return true end
    sim.faults:add { service = "elbv2", operation = "ModifyRule", status = 403 }
    return false
  end)
  local code, err, _, raw = R.call(function()
    return rollout.canary { image = "api:v2", container = "api", steps = { 10, 50, 100 }, bake = "2m",
      gates = { broken } }
  end)
  sim.faults:clear()
  T.eq(code, 3, err)
  T.eq(raw.kind, "rollback")
  T.eq(raw.code, "RollbackFailed")
  T.eq(raw.rollback_failed, true)
  T.eq(raw.report.status, "rollback_failed")
  T.eq(raw.cause.code, "GateFailed")
  T.ok(raw.left:find("traffic back to api-canary=0 api-stable=100 FAILED", 1, true), raw.left)
  T.ok(raw.left:find("service api-canary back to task definition api:1, desired count 0 (not tried)", 1, true),
    raw.left)
  T.eq(R.weights(), { ["api-stable"] = 50, ["api-canary"] = 50 }, "traffic where the failure left it")
  T.eq(R.service("api-canary").desired, 4, "the canary still serves its share")
end)
