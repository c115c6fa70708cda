-- ecsplay.gate kinds: every gate kind measured against the in-process simulator (virtual clock),
-- and gates in a canary rollout.
local T = require "harness"
local R = require "rollout_sim"
local gate = require "ecsplay.gate"
local sched = require "ecsplay.sched"
local aws = require "ecsplay.aws"

---------------------------------------------------------------- against the simulator

local ecs = require "ecsplay.ecs"
local ecs_util = require "ecsplay.rollout.ecs_util"
local traffic = require "ecsplay.rollout.traffic"

--[[ A fresh default world with api-canary running `image` (2 tasks), `weight` percent of
     the rule's traffic on it, after `minutes` of that traffic as CloudWatch shows it: the
     metric gates judge only periods after the weight change (step_at) that CloudWatch has
     published (gate.DEFAULT_DELAY after they end), so the clock goes on until `minutes`
     whole periods of the new weight are visible. ]]
local step_at

-- Seconds until `minutes` whole periods that begin after now are published.
local function visible_after(minutes)
  return (60 - sched.now() % 60) % 60 + minutes * 60 + gate.DEFAULT_DELAY
end

local function world(image, weight, minutes)
  R.fresh()
  local stable, canary = traffic.target_group_arn("api-stable"), traffic.target_group_arn("api-canary")
  if image then
    local td = R.register_image("api:1", image, "api")
    ecs.update_service { cluster = "production", service = "api-canary", taskDefinition = td, desiredCount = 2 }
    ecs_util.wait_ready("production", "api-canary", td, 2, { canary }, 600)
  end
  if weight and weight > 0 then
    traffic.set(traffic.resolve(nil, { stable, canary }), { [stable] = 100 - weight, [canary] = weight })
  end
  step_at = sched.now()
  if (minutes or 0) > 0 then sched.sleep(visible_after(minutes)) end
end

local function measure(g, extra)
  gate.prepare_all({ g }, {})
  local ctx = { now = sched.now(), interval = 60, step_started = step_at }
  for k, v in pairs(extra or {}) do ctx[k] = v end
  local m = gate.tracker({ g }):measure(ctx)[1].m
  return m, gate.describe(m)
end

T.test("alb_5xx_rate: api:flaky at 25% fails with a value near 6%", function()
  world("api:flaky", 25, 4)
  local m, text = measure(gate.alb_5xx_rate { target_group = "api-canary", below = 1.0, window = "3m" })
  T.eq(m.result, "fail", text)
  T.near(m.value, 6, 1.0, text)
  T.ok(text:find("< 1%", 1, true), text)
end)

T.test("alb_5xx_rate: a healthy canary (api:v2 at 25%) passes", function()
  world("api:v2", 25, 4)
  local m, text = measure(gate.alb_5xx_rate { target_group = "api-canary", below = 1.0, window = "3m" })
  T.eq(m.result, "pass", text)
  T.ok(m.value < 1, text)
end)

T.test("alb_5xx_rate: no traffic (weight 0) is inconclusive from the min_requests guard", function()
  world("api:flaky", 0, 4)
  local m, text = measure(gate.alb_5xx_rate { target_group = "api-canary", below = 1.0, window = "3m" })
  T.eq(m.result, "inconclusive", text)
  T.ok(text:find("requests", 1, true), text)
  -- a guard above what the canary gets is inconclusive too
  world("api:v2", 1, 3) -- 1% of 200 rps: 120 requests a minute
  m, text = measure(gate.alb_5xx_rate { target_group = "api-canary", below = 1.0, min_requests = 10000 })
  T.eq(m.result, "inconclusive", text)
  m, text = measure(gate.alb_5xx_rate { target_group = "api-canary", below = 5.0, min_requests = 50 })
  T.ok(m.result ~= "inconclusive", text)
end)

T.test("alb_latency: api:slow fails p99 < 300 ms; api:v2 passes", function()
  world("api:slow", 25, 3)
  local m, text = measure(gate.alb_latency { target_group = "api-canary", p = 99, below_ms = 300 })
  T.eq(m.result, "fail", text)
  T.ok(m.value > 800 and m.value < 2000, text)
  T.ok(text:find("< 300 ms", 1, true), text)
  local m50 = measure(gate.alb_latency { target_group = "api-canary", p = 50, below_ms = 1000 })
  T.eq(m50.result, "pass")
  T.near(m50.value, 300, 60, "p50 of api:slow")
  world("api:v2", 25, 3)
  local p99, text99 = measure(gate.alb_latency { target_group = "api-canary", below_ms = 300 })
  T.eq(p99.result, "pass", text99)
  T.near(p99.value, 150, 40, text99) -- the default image's p99 is 150 ms
  m, text = measure(gate.alb_latency { target_group = "api-canary", p = 99.9, below_ms = 300 })
  T.ok(m.value > p99.value, text)
  T.ok(text:find("p99.9", 1, true) == nil and m.threshold == "< 300 ms", text)
  T.eq(gate.alb_latency { target_group = "api-canary", p = 99.9, below_ms = 300 }.name,
    "p99.9 latency api-canary")
end)

T.test("alb_latency: no traffic is inconclusive", function()
  world(nil, 0, 2)
  local m, text = measure(gate.alb_latency { target_group = "api-canary", below_ms = 300 })
  T.eq(m.result, "inconclusive", text)
end)

T.test("alb_healthy_hosts: counts healthy targets now", function()
  world("api:v2", 0, 0)
  local m, text = measure(gate.alb_healthy_hosts { target_group = "api-canary", at_least = 2 })
  T.eq({ m.result, m.value }, { "pass", 2 }, text)
  m, text = measure(gate.alb_healthy_hosts { target_group = "api-stable", at_least = 5 })
  T.eq({ m.result, m.value }, { "fail", 4 }, text)
  T.ok(text:find(">= 5", 1, true), text)
end)

T.test("alarm: OK passes, ALARM fails naming it, INSUFFICIENT_DATA is inconclusive", function()
  world(nil, 0, 0)
  local cloudwatch = require "ecsplay.cloudwatch"
  local g = gate.alarm { "api-5xx-high" }
  T.eq(measure(g).result, "pass")
  cloudwatch.set_alarm_state { AlarmName = "api-5xx-high", StateValue = "ALARM", StateReason = "test" }
  local m, text = measure(g)
  T.eq(m.result, "fail", text)
  T.ok(text:find("api-5xx-high", 1, true), text)
  cloudwatch.set_alarm_state { AlarmName = "api-5xx-high", StateValue = "INSUFFICIENT_DATA", StateReason = "test" }
  T.eq(measure(g).result, "inconclusive")
  T.eq(measure(gate.alarm "api-5xx-high").result, "inconclusive", "a single name as a string")
end)

T.test("alarm: a name missing in a session's Region says that Region, where it looked", function()
  local scenario = require "ecsplay.sim.scenario"
  R.fresh(scenario.check({ regions = { "us-east-1", "eu-west-1" } }, "two regions"))
  local s = require("ecsplay.aws").session { region = "eu-west-1" }
  local e = T.raises(function() gate.prepare_all({ gate.alarm { "no-such-alarm", session = s } }, {}) end,
    "no%-such%-alarm` does not exist in Region eu%-west%-1")
  T.eq(e.code, "BadInput")
end)

T.test("alarm: a name that does not exist is BadInput at prepare", function()
  world(nil, 0, 0)
  local e = T.raises(function() gate.prepare_all({ gate.alarm { "api-5xx-high", "no-such-alarm" } }, {}) end,
    "no%-such%-alarm` does not exist in Region us%-east%-1")
  T.eq(e.code, "BadInput")
end)

T.test("cloudwatch: an expression m1/m2*100 over 5xx and RequestCount", function()
  world("api:flaky", 25, 4)
  local dims = gate.alb_dimensions("api-canary")
  local function g(threshold)
    local o = { name = "canary 5xx %", expression = "m1/m2*100", aggregate = "avg", window = "3m",
      metrics = {
        m1 = { namespace = "AWS/ApplicationELB", metric = "HTTPCode_Target_5XX_Count", dimensions = dims, stat = "Sum" },
        m2 = { namespace = "AWS/ApplicationELB", metric = "RequestCount", dimensions = dims, stat = "Sum" },
      } }
    for k, v in pairs(threshold) do o[k] = v end
    return gate.cloudwatch(o)
  end
  local m, text = measure(g { below = 1 })
  T.eq(m.result, "fail", text)
  T.near(m.value, 6, 1.0, text)
  m, text = measure(g { below = 10 })
  T.eq(m.result, "pass", text)
  m, text = measure(g { above = 3, below = 10 })
  T.eq(m.result, "pass", text)
  T.ok(text:find("> 3", 1, true) and text:find("< 10", 1, true), text)
  -- a single metric, with the dimensions as a map
  m, text = measure(gate.cloudwatch { namespace = "AWS/ApplicationELB", metric = "RequestCount",
    dimensions = { TargetGroup = dims[1].Value, LoadBalancer = dims[2].Value }, stat = "Sum", above = 1000 })
  T.eq(m.result, "pass", text) -- 25% of 200 rps: ~3000 a minute
  T.near(m.value, 3000, 300, text)
  -- the window's datapoints aggregated: three minutes of ~3000 requests
  local function agg(a)
    return (measure(gate.cloudwatch { namespace = "AWS/ApplicationELB", metric = "RequestCount",
      dimensions = dims, stat = "Sum", above = 0, aggregate = a, window = "3m" })).value
  end
  local total, lo, hi, avg = agg("sum"), agg("min"), agg("max"), agg("avg")
  T.near(total, 9000, 900, "sum")
  T.ok(lo <= avg and avg <= hi and hi < total, string.format("min %s avg %s max %s", lo, avg, hi))
  T.near(avg, total / 3, 1e-6, "avg of three minutes")
  -- a metric nobody publishes: no data
  m, text = measure(gate.cloudwatch { namespace = "Custom", metric = "Nothing", below = 1 })
  T.eq(m.result, "inconclusive", text)
end)

-- The loopback stub (tests/wire/http_stub.py): /status?code=N answers N.
local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
local function with_stub(fn)
  local stub = io.popen("exec /usr/bin/python3 " .. here .. "/../wire/http_stub.py --port 0", "r")
  local port = tonumber(stub:read("l"))
  assert(port, "http_stub.py did not report its port")
  local ok, err = pcall(fn, "http://127.0.0.1:" .. port)
  require("ecsplay.http").request { url = "http://127.0.0.1:" .. port .. "/quit", timeout = 5 }
  stub:close()
  if not ok then error(err, 0) end
  return port
end

T.test("http: 200 passes, 500 fails with the status, a body pattern, connection refused fails", function()
  local port = with_stub(function(base)
    local m, text = measure(gate.http { url = base .. "/status?code=200&body=ready" })
    T.eq({ m.result, m.value }, { "pass", 200 }, text)
    m, text = measure(gate.http { url = base .. "/status?code=500" })
    T.eq({ m.result, m.value }, { "fail", 500 }, text)
    T.ok(text:find("status 200", 1, true), text)
    m, text = measure(gate.http { url = base .. "/status?code=503", status = 503 })
    T.eq(m.result, "pass", text)
    m = measure(gate.http { url = base .. "/status?code=200&body=ready", body = "^ready$" })
    T.eq(m.result, "pass")
    m, text = measure(gate.http { url = base .. "/status?code=200&body=starting", body = "ready" })
    T.eq(m.result, "fail", text)
  end)
  -- the stub has quit: nothing listens on its port any more
  local m, text = measure(gate.http { url = "http://127.0.0.1:" .. port .. "/health", timeout = "2s" })
  T.eq(m.result, "fail", text)
  T.ok(m.detail and #m.detail > 0, "the connection error is shown")
end)

-- canary and stable series for the baseline gate, baked for `minutes`
local function baseline_measure(opts, minutes)
  local started = sched.now()
  sched.sleep(visible_after(minutes))
  local o = { canary = "api-canary", stable = "api-stable", metric = "5xx_rate" }
  for k, v in pairs(opts or {}) do o[k] = v end
  return measure(gate.baseline(o), { bake_started = started, step_started = started })
end

T.test("baseline: api:flaky against api:v1 at 50/50 fails", function()
  world("api:flaky", 50, 0)
  local m, text = baseline_measure({}, 8)
  T.eq(m.result, "fail", text)
  T.ok(m.value < 0.05, text)
end)

T.test("baseline: the same image on both sides passes", function()
  world("api:v1", 50, 0)
  local m, text = baseline_measure({}, 8)
  T.eq(m.result, "pass", text)
  T.ok(m.value > 0.05 and text:find("no evidence", 1, true), text)
end)

T.test("baseline: latency of api:slow against api:v1 fails; too few samples is inconclusive", function()
  world("api:slow", 50, 0)
  local m, text = baseline_measure({ metric = "latency", p = 99 }, 7)
  T.eq(m.result, "fail", text)
  world("api:flaky", 50, 0)
  m, text = baseline_measure({ min_samples = 5 }, 2)
  T.eq(m.result, "inconclusive", text)
  T.ok(text:find("samples", 1, true), text)
end)

T.test("baseline: a canary without traffic is inconclusive, not a pass", function()
  world("api:v2", 0, 0)
  local m, text = baseline_measure({}, 8)
  T.eq(m.result, "inconclusive", text)
end)
---------------------------------------------------------------- gates in a rollout

T.test("a canary whose gate names a missing target group: exit 2, nothing changed", function()
  world(nil, 0, 0)
  local rollout = require "ecsplay.rollout"
  local before = aws.stats.mutating_calls
  local code, err = R.call(function()
    return rollout.canary { image = "api:v2", container = "api", steps = { 50 }, bake = "1m",
      gates = { gate.alb_5xx_rate { target_group = "api-canray", below = 1 } } }
  end)
  T.eq(code, 2, err)
  T.ok(err:find("api-canray", 1, true) and err:find("target_group", 1, true), err)
  T.eq(aws.stats.mutating_calls, before, "no mutating call was sent")
  T.eq(R.weights(), { ["api-stable"] = 100, ["api-canary"] = 0 })
  T.eq(R.revisions("api"), 1)
  T.eq({ R.service("api").td, R.service("api-canary").desired }, { "api:1", 0 })
  -- and the same through the command line
  local out, rc = T.sh(R.bin .. " --simulate -e 'local rollout, gate = require \"ecsplay.rollout\", "
    .. "require \"ecsplay.gate\"; rollout.canary{ image = \"api:v2\", container = \"api\", steps = {50}, "
    .. "bake = \"1m\", gates = { gate.alb_5xx_rate{ target_group = \"nope\", below = 1 } } }'")
  T.eq(rc, 2, out)
  T.ok(out:find("nope", 1, true) and out:find("target_group", 1, true), out)
end)

T.test("a canary with only a dry-run 5xx gate on api:flaky is promoted; the failures are reported", function()
  world(nil, 0, 0)
  local rollout = require "ecsplay.rollout"
  local code, err, report = R.call(function()
    return rollout.canary { image = "api:flaky", container = "api", steps = { 50 }, bake = "3m",
      interval = "1m", failure_limit = 1,
      gates = { gate.alb_5xx_rate { target_group = "api-canary", below = 1.0, dry_run = true, min_requests = 1 } } }
  end)
  T.eq(code, 0, err)
  local fails = 0
  for _, round in ipairs(report.steps[1].measurements) do
    for _, m in ipairs(round) do
      if m.result == "fail" then fails = fails + 1; T.eq(m.dry_run, true) end
    end
  end
  T.ok(fails >= 2, "the dry-run gate measured failures: " .. fails)
  T.eq(R.service("api").td, "api:2", "promoted")
end)
