-- rollout.blue_green against a fresh in-process simulator per test: green (api-canary) gets the
-- new version, production swaps to it, blue is kept then scaled down; any failure swaps back.
local T = require "harness"
local R = require "rollout_sim"
local rollout, gate = require "ecsplay.rollout", require "ecsplay.gate"
local scenario = require "ecsplay.sim.scenario"

local function green_gates(green)
  return { gate.alb_5xx_rate { target_group = green.target_group, below = 1.0 },
           gate.alb_latency { target_group = green.target_group, p = 99, below_ms = 300 } }
end

local function bg(o)
  local opts = { image = "api:v2", container = "api", keep_blue = "3m", gates = green_gates }
  for k, v in pairs(o or {}) do opts[k] = v end
  return R.call(function() return rollout.blue_green(opts) end)
end

local function assert_home()
  T.eq(R.weights(), { ["api-stable"] = 100, ["api-canary"] = 0 })
  local blue, green = R.service("api"), R.service("api-canary")
  T.eq({ blue.td, blue.desired, blue.running }, { "api:1", 4, 4 })
  T.eq({ green.td, green.desired }, { "api:1", 0 })
end

T.test("promotes api:v2: production on green, blue scaled to zero; a second run swaps back", function()
  R.fresh()
  local code, err, report = bg()
  T.eq(code, 0, err)
  T.eq(report.serving, "api-canary")
  T.eq(R.weights(), { ["api-stable"] = 0, ["api-canary"] = 100 })
  local blue, green = R.service("api"), R.service("api-canary")
  T.eq({ green.td, green.desired, green.running }, { "api:2", 4, 4 })
  T.eq(blue.desired, 0)
  T.ok(#report.measurements >= 3, "gates measured while blue was kept")
  -- the side with all the traffic is blue now: the next version goes onto api
  code, err, report = bg { image = "api:v3" }
  T.eq(code, 0, err)
  T.eq(report.serving, "api")
  T.eq(R.weights(), { ["api-stable"] = 100, ["api-canary"] = 0 })
  T.eq(R.service("api").td, "api:3")
  T.eq(R.service("api-canary").desired, 0)
end)

T.test("api:bad: green never gets healthy, traffic never moves (exit 1)", function()
  R.fresh()
  local code, err = bg { image = "api:bad", ready_timeout = "5m" }
  T.eq(code, 1)
  T.ok(err:find("failed", 1, true) or err:find("not ready", 1, true), err)
  assert_home()
end)

T.test("api:flaky: 5xx once it has the traffic; instant swap back to blue", function()
  R.fresh()
  local code, err = bg { image = "api:flaky" }
  T.eq(code, 1)
  T.ok(err:find("5xx rate api-canary", 1, true), err)
  assert_home()
end)

T.test("api:slow: p99 latency regression; swap back", function()
  R.fresh()
  local code, err = bg { image = "api:slow" }
  T.eq(code, 1)
  T.ok(err:find("latency", 1, true), err)
  assert_home()
end)

T.test("an alarm going off during keep_blue swaps back", function()
  R.fresh(scenario.load("tests/scenarios/rollout_alarm.lua"))
  local code, err = bg { keep_blue = "6m", gates = function(g)
    local list = green_gates(g)
    list[#list + 1] = gate.alarm { "api-5xx-high" }
    return list
  end }
  T.eq(code, 1)
  T.ok(err:find("api-5xx-high", 1, true), err)
  assert_home()
end)

T.test("a gate provider that errors swaps back", function()
  R.fresh()
  local code, err = bg { gates = { gate.check("provider", function() error("backend 503") end) } }
  T.eq(code, 1)
  T.ok(err:find("backend 503", 1, true), err)
  assert_home()
end)

T.test("no traffic: inconclusive, swap back", function()
  R.fresh(scenario.load("tests/scenarios/rollout_no_traffic.lua"))
  local code, err = bg()
  T.eq(code, 1)
  T.ok(err:find("inconclusive", 1, true), err)
  assert_home()
end)

T.test("the test listener is pointed at green first and put back afterwards", function()
  R.fresh()
  local elbv2 = require "ecsplay.elbv2"
  local lb = elbv2.describe_load_balancers({ Names = { "web" } }).LoadBalancers[1]
  local test
  for _, l in ipairs(elbv2.describe_listeners({ LoadBalancerArn = lb.LoadBalancerArn }).Listeners) do
    if l.Port == 8443 then test = l.ListenerArn end
  end
  local seen
  local code, err = bg { test_listener = test, test_bake = "2m", test_gates = {
    gate.check("test route", function() seen = R.listener_weights(8443) return true end) } }
  T.eq(code, 0, err)
  T.eq(seen, { ["app-green"] = 0, ["api-canary"] = 100 })
  T.eq(R.listener_weights(8443), { ["app-green"] = 1 })
end)

T.test("bad input: rejected before any change (exit 2), message names the field", function()
  R.fresh(scenario.load("tests/scenarios/rollout_app_traffic.lua"))
  local rule = "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener-rule/app/web/0/1/2"
  local cases = {
    { { rule = rule }, "rule: listener rule .* does not exist" },
    { { green = { service = "api-canary", target_group = "api-green" } }, "green.target_group: target group `api%-green` does not exist" },
    { { green = { service = "worker" } }, "green.service: service `worker` has no load balancer" },
    { { keep_blu = "5m" }, "keep_blu: unknown option; did you mean `keep_blue`" },
    { { green = { service = "api" } }, "two different services" },
    { { test_listener = 8443 }, "test_listener" },
  }
  for _, case in ipairs(cases) do
    local code, err = bg(case[1])
    T.eq(code, 2, case[2] .. ": " .. tostring(err))
    T.ok(err:find(case[2]), tostring(err) .. " should match " .. case[2])
  end
  T.raises(function() gate.alb_5xx_rate { target_group = "api-canary", bellow = 1 } end, "unknown option `bellow`")
  T.eq(R.revisions("api"), 1)
  T.eq(R.service("api-canary").desired, 0)
end)
