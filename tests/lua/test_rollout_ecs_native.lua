-- rollout.ecs_native against a fresh in-process simulator per test: ECS's own CANARY / LINEAR /
-- BLUE_GREEN strategy with PAUSE hooks; ecsplay's gates decide continue or rollback.
local T = require "harness"
local R = require "rollout_sim"
local rollout, gate = require "ecsplay.rollout", require "ecsplay.gate"
local scenario = require "ecsplay.sim.scenario"

local function gates(green)
  return { gate.alb_5xx_rate { target_group = green.target_group, below = 1.0 },
           gate.alb_latency { target_group = green.target_group, p = 99, below_ms = 300 } }
end

local function native(o)
  local opts = { service = "api", image = "api:v2", container = "api", strategy = "CANARY",
    canary = { percent = 25, bake = "1m" }, alternate_target_group = "api-canary", bake = "2m",
    gates = gates }
  for k, v in pairs(o or {}) do opts[k] = v end
  if opts.canary == false then opts.canary = nil end -- false: drop the default
  return R.call(function() return rollout.ecs_native(opts) end)
end

local function sd_status(raw_or_report)
  local arn = raw_or_report.service_deployment or raw_or_report.report.service_deployment
  return require("ecsplay.ecs").describe_service_deployments({ serviceDeploymentArns = { arn } })
    .serviceDeployments[1].status
end

local function assert_blue(raw)
  T.eq(sd_status(raw), "ROLLBACK_SUCCESSFUL")
  T.eq(R.weights(), { ["api-stable"] = 100, ["api-canary"] = 0 })
  local s = R.service("api")
  T.eq({ s.td, s.running, s.deployments }, { "api:1", 4, 1 })
  T.eq(R.healthy("api-stable"), 4)
end

T.test("CANARY promotes api:v2: two pauses, production on the alternate group", function()
  R.fresh()
  local code, err, report = native()
  T.eq(code, 0, err)
  T.eq(sd_status(report), "SUCCESSFUL")
  T.eq(#report.pauses, 2)
  T.eq({ report.pauses[1].weight, report.pauses[2].weight }, { 25, 100 })
  T.eq(R.weights(), { ["api-stable"] = 0, ["api-canary"] = 100 })
  local s = R.service("api")
  T.eq({ s.td, s.running, s.deployments }, { "api:2", 4, 1 })
  T.eq(s.raw.deploymentConfiguration.strategy, "CANARY")
  -- the next deployment goes the other way: api-stable is green now
  code, err, report = native { image = "api:v3", strategy = "BLUE_GREEN", canary = false }
  T.eq(code, 0, err)
  T.eq(R.weights(), { ["api-stable"] = 100, ["api-canary"] = 0 })
end)

T.test("LINEAR pauses at every step", function()
  R.fresh()
  local code, err, report = native { strategy = "LINEAR", canary = false, linear = { step = 50, bake = "1m" } }
  T.eq(code, 0, err)
  T.eq(#report.pauses, 2)
  T.eq(report.pauses[1].weight, 50)
end)

T.test("api:flaky: 5xx at 25%; StopServiceDeployment ROLLBACK, traffic back on blue", function()
  R.fresh()
  local code, err, _, raw = native { image = "api:flaky" }
  T.eq(code, 1)
  T.ok(err:find("5xx rate api-canary", 1, true), err)
  assert_blue(raw)
end)

T.test("api:slow: latency regression rolls back", function()
  R.fresh()
  local code, err, _, raw = native { image = "api:slow" }
  T.eq(code, 1)
  T.ok(err:find("latency", 1, true), err)
  assert_blue(raw)
end)

T.test("api:bad: ECS's circuit breaker rolls back on its own; reported, exit 1", function()
  R.fresh()
  local code, err, _, raw = native { image = "api:bad" }
  T.eq(code, 1)
  T.ok(err:find("ECS ended the deployment with ROLLBACK_SUCCESSFUL", 1, true)
    and err:find("circuit breaker", 1, true), err)
  assert_blue(raw)
end)

T.test("an alarm going off rolls back", function()
  R.fresh(scenario.load("tests/scenarios/rollout_alarm.lua"))
  local code, err, _, raw = native { bake = "5m", gates = { gate.alarm { "api-5xx-high" } } }
  T.eq(code, 1)
  T.ok(err:find("api-5xx-high", 1, true), err)
  assert_blue(raw)
end)

T.test("a gate provider that errors rolls back", function()
  R.fresh()
  local code, err, _, raw = native { gates = { gate.check("provider", function() error("backend 503") end) } }
  T.eq(code, 1)
  T.ok(err:find("backend 503", 1, true), err)
  assert_blue(raw)
end)

T.test("no traffic: inconclusive rolls back", function()
  R.fresh(scenario.load("tests/scenarios/rollout_no_traffic.lua"))
  local code, err, _, raw = native()
  T.eq(code, 1)
  T.ok(err:find("inconclusive", 1, true), err)
  assert_blue(raw)
end)

T.test("bad input: rejected before any change (exit 2), message names the field", function()
  R.fresh(scenario.load("tests/scenarios/rollout_app_traffic.lua"))
  local cases = {
    { { strategy = "ROLLING" }, "strategy: expected" },
    { { pause_at = { "PRODUCTION_SHIFT" } }, "pause_at%[1%]: unknown lifecycle stage" },
    { { alternate_target_group = "api-green" }, "alternate_target_group: target group `api%-green` does not exist" },
    { { alternate_target_group = false }, "alternate_target_group: service `api` has no advancedConfiguration" },
    { { service = "worker" }, "service: service `worker` has no load balancer" },
    { { service = "app" }, "CODE_DEPLOY" },
    { { canary = { percent = 100 } }, "canary.percent" },
    { { canary = { bake = "90s" } }, "canary.bake: ECS bake times are whole minutes" },
    { { rule = "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener-rule/app/web/0/1/2" },
      "rule: listener rule .* does not exist" },
  }
  for _, case in ipairs(cases) do
    local o = case[1]
    if o.alternate_target_group == false then o.alternate_target_group = nil end
    local opts = { service = "api", image = "api:v2", alternate_target_group = "api-canary" }
    for k, v in pairs(o) do opts[k] = v end
    if case[1].alternate_target_group == nil and case[2]:find("advancedConfiguration") then
      opts.alternate_target_group = nil
    end
    local code, err = R.call(function() return rollout.ecs_native(opts) end)
    T.eq(code, 2, case[2] .. ": " .. tostring(err))
    T.ok(err:find(case[2]), tostring(err) .. " should match " .. case[2])
  end
  T.eq(R.revisions("api"), 1)
  T.eq(R.service("api").raw.deploymentConfiguration.strategy, "ROLLING")
end)
