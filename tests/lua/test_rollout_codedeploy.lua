-- rollout.codedeploy against a fresh in-process simulator per test: CodeDeploy shifts app's
-- traffic, ecsplay's gates watch app-green and stop the deployment with rollback on failure.
-- Most tests use tests/scenarios/rollout_app_traffic.lua, where app receives the production
-- traffic (in the default world the api rule matches /* and app gets none).
local T = require "harness"
local R = require "rollout_sim"
local rollout, gate = require "ecsplay.rollout", require "ecsplay.gate"
local scenario = require "ecsplay.sim.scenario"

local function app_world(extra)
  local sc = scenario.load("tests/scenarios/rollout_app_traffic.lua")
  for k, v in pairs(extra or {}) do sc[k] = v end
  return R.fresh(sc)
end

local function gates(green)
  return { gate.alb_5xx_rate { target_group = green.target_group, below = 1.0 },
           gate.alb_latency { target_group = green.target_group, p = 99, below_ms = 300 } }
end

-- The same gates for a world whose CloudWatch shows each minute at once (metrics.delay 0):
-- with CloudWatch's delay a 5-minute canary holds only two or three published minutes,
-- fewer than these tests count (tests/lua/test_gate_windows.lua covers the delay).
local function prompt_gates(green)
  return { gate.alb_5xx_rate { target_group = green.target_group, below = 1.0, delay = "0s" },
           gate.alb_latency { target_group = green.target_group, p = 99, below_ms = 300, delay = "0s" } }
end

local function deploy(o)
  local opts = { application = "app-deploy", group = "app-dg", image = "app:v2", container = "app",
    port = 8080, config = "CodeDeployDefault.ECSCanary10Percent5Minutes", gates = gates }
  for k, v in pairs(o or {}) do opts[k] = v end
  return R.call(function() return rollout.codedeploy(opts) end)
end

local function status(id)
  return require("ecsplay.codedeploy").get_deployment({ deploymentId = id }).deploymentInfo.status
end

local function last_id()
  local res = require("ecsplay.codedeploy").list_deployments { applicationName = "app-deploy",
    deploymentGroupName = "app-dg" }
  return res.deployments[1]
end

-- the deployment ecsplay created (CodeDeploy's own rollback deployment is listed too)
local function assert_blue(raw)
  local id = raw.report.deployment_id
  T.ok(id, "the report names the deployment")
  T.eq(status(id), "Stopped")
  local info = require("ecsplay.codedeploy").get_deployment({ deploymentId = id }).deploymentInfo
  T.ok(info.rollbackInfo and info.rollbackInfo.rollbackDeploymentId, "CodeDeploy rolled it back")
  T.eq(R.listener_weights(443), { ["app-blue"] = 1 }, "production back on app-blue")
  T.eq(R.service("app").td, "app:1")
end

T.test("promotes app:v2: Succeeded, production on app-green, gates measured while shifting", function()
  app_world { metrics = { delay = 0 } }
  local code, err, report = deploy { gates = prompt_gates }
  T.eq(code, 0, err)
  T.eq(status(report.deployment_id), "Succeeded")
  local w = R.listener_weights(443)
  T.eq(w["app-green"], 100)
  T.eq(R.service("app").td, "app:2")
  T.ok(#report.measurements >= 5, "measured during the 5-minute canary and after")
end)

T.test("custom canary config is created with a name from its numbers", function()
  app_world()
  local code, err, report = deploy { config = { canary = { 25, "3m" } } }
  T.eq(code, 0, err)
  local info = require("ecsplay.codedeploy").get_deployment_config {
    deploymentConfigName = "ecsplay.ECSCanary25Percent3Minutes" }.deploymentConfigInfo
  T.eq(info.trafficRoutingConfig.timeBasedCanary, { canaryPercentage = 25, canaryInterval = 3 })
  T.eq(require("ecsplay.codedeploy").get_deployment({ deploymentId = report.deployment_id })
    .deploymentInfo.deploymentConfigName, "ecsplay.ECSCanary25Percent3Minutes")
end)

T.test("app:bad: green never healthy; stopped with rollback, app-blue serves (exit 1)", function()
  app_world()
  local code, err, _, raw = deploy { image = "app:bad", ready_timeout = "5m" }
  T.eq(code, 1)
  T.ok(err:find("not healthy", 1, true), err)
  assert_blue(raw)
end)

T.test("app:flaky: 5xx once it has the traffic; StopDeployment with rollback", function()
  app_world()
  local code, err, _, raw = deploy { image = "app:flaky" }
  T.eq(code, 1)
  T.ok(err:find("5xx rate app-green", 1, true), err)
  assert_blue(raw)
end)

T.test("app:slow: latency regression; stopped and rolled back", function()
  app_world()
  local code, err, _, raw = deploy { image = "app:slow" }
  T.eq(code, 1)
  T.ok(err:find("latency", 1, true), err)
  assert_blue(raw)
end)

T.test("an alarm going off stops the deployment", function()
  app_world { alarms = { ["api-5xx-high"] = { state = "OK", ["then"] = { at = "3m", state = "ALARM" } } } }
  local code, err, _, raw = deploy { gates = { gate.alarm { "api-5xx-high" } } }
  T.eq(code, 1)
  T.ok(err:find("api-5xx-high", 1, true), err)
  assert_blue(raw)
end)

T.test("a gate provider that errors stops the deployment", function()
  app_world()
  local code, err, _, raw = deploy { gates = { gate.check("provider", function() error("backend 503") end) } }
  T.eq(code, 1)
  T.ok(err:find("backend 503", 1, true), err)
  assert_blue(raw)
end)

T.test("no traffic: inconclusive gates stop the deployment", function()
  app_world { traffic = { rps = 0 }, metrics = { delay = 0 } }
  local code, err, _, raw = deploy { gates = prompt_gates }
  T.eq(code, 1)
  T.ok(err:find("inconclusive", 1, true), err)
  assert_blue(raw)
end)

T.test("bad input: rejected before any change (exit 2), message names the field", function()
  app_world()
  local cases = {
    { { group = "nope" }, "group: deployment group `nope` does not exist" },
    { { application = "nope" }, "application: CodeDeploy application `nope` does not exist" },
    { { config = "Custom.Missing" }, "config: deployment configuration `Custom.Missing` does not exist" },
    { { config = { linear = { 10, "30s" } } }, "config.linear%[2%]: CodeDeploy intervals are whole minutes" },
    { { config = { canary = { 100, "5m" } } }, "config.canary%[1%]" },
    { { container = "web" }, "container: .*no container `web`" },
    { { port = 9090 }, "port: container `app` maps no port 9090" },
    { { confg = "x" }, "did you mean `config`" },
  }
  for _, case in ipairs(cases) do
    local code, err, _, raw = deploy(case[1])
    T.eq(code, 2, case[2] .. ": " .. tostring(err))
    T.ok(err:find(case[2]), tostring(err) .. " should match " .. case[2])
  end
  T.eq(R.revisions("app"), 1)
  T.eq(last_id(), nil, "no deployment created")
end)
