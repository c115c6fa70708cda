-- rollout.rolling against a fresh in-process simulator per test: ECS's rolling update watched
-- to completion, ECS's own circuit-breaker rollback reported as a failure, gates, bad input.
local T = require "harness"
local R = require "rollout_sim"
local rollout, gate = require "ecsplay.rollout", require "ecsplay.gate"
local scenario = require "ecsplay.sim.scenario"

local function rolling(o)
  local opts = { cluster = "production", service = "api", image = "api:v2", container = "api" }
  for k, v in pairs(o or {}) do opts[k] = v end
  return R.call(function() return rollout.rolling(opts) end)
end

T.test("promotes api:v2: the service runs the new revision, one deployment, all healthy", function()
  R.fresh()
  local code, err, report = rolling { bake = "2m",
    gates = { gate.alb_5xx_rate { target_group = "api-stable", below = 1.0 } } }
  T.eq(code, 0, err)
  T.eq(report.status, "succeeded")
  local s = R.service("api")
  T.eq({ s.td, s.desired, s.running, s.deployments }, { "api:2", 4, 4, 1 })
  T.eq(R.healthy("api-stable"), 4)
  T.ok(#report.measurements >= 2, "gates measured during the bake")
end)

T.test("api:bad: ECS's circuit breaker rolls back; reported, exit 1, api back on api:1", function()
  R.fresh()
  local code, err = rolling { image = "api:bad" }
  T.eq(code, 1)
  T.ok(err:find("ECS rolled back", 1, true) and err:find("circuit breaker", 1, true), err)
  local s = R.service("api")
  T.eq({ s.td, s.desired, s.running, s.deployments }, { "api:1", 4, 4, 1 })
  T.eq(R.weights(), { ["api-stable"] = 100, ["api-canary"] = 0 })
end)

T.test("the circuit breaker is switched on when the service has it off", function()
  R.fresh()
  require("ecsplay.ecs").update_service { cluster = "production", service = "api",
    deploymentConfiguration = { maximumPercent = 200, minimumHealthyPercent = 100,
      deploymentCircuitBreaker = { enable = false, rollback = false } } }
  local code = rolling { image = "api:bad" }
  T.eq(code, 1)
  local dc = R.service("api").raw.deploymentConfiguration
  T.eq(dc.deploymentCircuitBreaker, { enable = true, rollback = true })
  T.eq(R.service("api").td, "api:1")
end)

T.test("api:slow: the latency gate fails during the bake; updated back to api:1", function()
  R.fresh()
  local code, err = rolling { image = "api:slow", bake = "3m",
    gates = { gate.alb_latency { target_group = "api-stable", p = 99, below_ms = 300 } } }
  T.eq(code, 1)
  T.ok(err:find("latency", 1, true), err)
  R.settle(180)
  local s = R.service("api")
  T.eq({ s.td, s.running, s.deployments }, { "api:1", 4, 1 })
end)

T.test("api:flaky at 100%: the 5xx gate fails; back on api:1", function()
  R.fresh()
  local code = rolling { image = "api:flaky", bake = "3m",
    gates = { gate.alb_5xx_rate { target_group = "api-stable", below = 1.0 } } }
  T.eq(code, 1)
  R.settle(180)
  T.eq(R.service("api").td, "api:1")
end)

T.test("an alarm going off fails the alarm gate", function()
  R.fresh(scenario.load("tests/scenarios/rollout_alarm.lua"))
  local code, err = rolling { bake = "5m", gates = { gate.alarm { "api-5xx-high" } } }
  T.eq(code, 1)
  T.ok(err:find("api-5xx-high", 1, true), err)
  R.settle(180)
  T.eq(R.service("api").td, "api:1")
end)

T.test("a gate provider that errors aborts after error_limit errors", function()
  R.fresh()
  local code, err = rolling { bake = "5m",
    gates = { gate.check("broken provider", function() error("metrics backend down") end) } }
  T.eq(code, 1)
  T.ok(err:find("could not be measured", 1, true) and err:find("metrics backend down", 1, true), err)
  R.settle(180)
  T.eq(R.service("api").td, "api:1")
end)

T.test("no traffic: inconclusive gates roll back instead of promoting on no data", function()
  R.fresh(scenario.load("tests/scenarios/rollout_no_traffic.lua"))
  local code, err = rolling { bake = "2m",
    gates = { gate.alb_5xx_rate { target_group = "api-stable", below = 1.0 } } }
  T.eq(code, 1)
  T.ok(err:find("inconclusive", 1, true), err)
  R.settle(180)
  T.eq(R.service("api").td, "api:1")
end)

T.test("bad input is rejected before any change (exit 2), naming the field", function()
  R.fresh(scenario.load("tests/scenarios/rollout_app_traffic.lua"))
  local cases = {
    { { sevice = "api" }, "sevice.*did you mean `service`" },
    { { service = "nope" }, "service: service `nope` not found" },
    { { container = "web" }, "container: .*no container `web`" },
    { { service = "app" }, "CODE_DEPLOY" },
    { { image = false, task_definition = "api:99" }, "task_definition" },
    { { circuit_breaker = "yes" }, "circuit_breaker" },
    { { timeout = "soon" }, "timeout" },
  }
  for _, case in ipairs(cases) do
    local o = case[1]
    if o.image == false then o.image = nil end
    local opts = { cluster = "production", service = "api", image = "api:v2" }
    if o.task_definition then opts.image = nil end
    for k, v in pairs(o) do opts[k] = v end
    local code, err = R.call(function() return rollout.rolling(opts) end)
    T.eq(code, 2, "case " .. case[2] .. ": " .. tostring(err))
    T.ok(err:find(case[2]), "message " .. tostring(err) .. " should match " .. case[2])
  end
  T.eq(R.revisions("api"), 1, "no task definition registered")
  T.eq(R.service("api").td, "api:1")
end)
