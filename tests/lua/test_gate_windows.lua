-- Gates that judge their own step on what CloudWatch has published: step-aligned windows,
-- the simulator's publishing delay (scenario `metrics = { delay = }`), bakes and intervals
-- shorter than a gate's period refused before any change, and a scenario whose behaviour
-- function fails ending the run with its file and line (issue 8, items 1, 2 and 6).
local T = require "harness"
local R = require "rollout_sim"
local gate = require "ecsplay.gate"
local rollout = require "ecsplay.rollout"
local sched = require "ecsplay.sched"
local aws = require "ecsplay.aws"
local errors = require "ecsplay.errors"
local scenario = require "ecsplay.sim.scenario"
local cloudwatch = require "ecsplay.cloudwatch"
local traffic = require "ecsplay.rollout.traffic"
local ecs_util = require "ecsplay.rollout.ecs_util"

-- An image that is healthy until its target group gets half of the traffic, then fails a
-- fifth of its requests (tests/scenarios/fail_at_50.lua has the same image in a file).
local FAIL50 = { error_rate = function(ctx) return (ctx.weight or 0) >= 50 and 0.2 or 0.001 end }

local function world_with(delay, extra)
  local s = { images = { ["api:fail50"] = FAIL50 } }
  if delay then s.metrics = { delay = delay } end
  for k, v in pairs(extra or {}) do s[k] = v end
  return R.fresh(s)
end

--[[ Records the highest weight any ModifyRule of the run gave api-canary, from the
     simulated world's side (what ELBv2 was asked to apply, whoever asked). ]]
local function watch_canary_weight(sim)
  local seen = { max = 0 }
  local canary = traffic.target_group_arn("api-canary")
  local ops = sim.world.svc.elbv2.ops
  local modify = ops.ModifyRule
  ops.ModifyRule = function(world, input, ...)
    for _, a in ipairs(input.Actions or {}) do
      for _, tg in ipairs(a.ForwardConfig and a.ForwardConfig.TargetGroups or {}) do
        if tg.TargetGroupArn == canary then seen.max = math.max(seen.max, tg.Weight or 0) end
      end
    end
    return modify(world, input, ...)
  end
  seen.stop = function() ops.ModifyRule = modify end
  return seen
end

-- The world a refused run must have left alone.
local function assert_unchanged(label)
  T.eq(R.revisions("api"), 1, label .. ": no task definition registered")
  T.eq(R.weights(), { ["api-stable"] = 100, ["api-canary"] = 0 }, label .. ": weights")
  T.eq(R.service("api-canary").desired, 0, label .. ": canary service")
  T.eq(R.service("api").td, "api:1", label .. ": stable service")
end

---------------------------------------------------------------- the matrix

local BAKES = { "5s", "20s", "45s", "5m" }
local IMAGES = {
  { image = "api:v2", fails_at = nil },      -- healthy
  { image = "api:flaky", fails_at = 25 },    -- the default world's: 6 % 5xx from 25 %
  { image = "api:fail50", fails_at = 50 },   -- 20 % 5xx from 50 %
}
local DELAYS = { "0s", "2m", "3m" }

for _, delay in ipairs(DELAYS) do
  for _, im in ipairs(IMAGES) do
    for _, bake in ipairs(BAKES) do
      local name = string.format("matrix: bake %s x %s x delay %s", bake, im.image, delay)
      T.test(name, function()
        local sim = world_with(delay)
        local seen = watch_canary_weight(sim)
        local before = aws.stats.mutating_calls
        local code, err, out = R.playbook("playbooks/canary.lua", { image = im.image, bake = bake })
        seen.stop()
        if bake ~= "5m" then
          -- shorter than the gates' 60 s period: refused before any change
          T.eq(code, 2, name .. ": " .. tostring(err))
          T.ok(err:find("rollout.canary: bake:", 1, true), err)
          T.ok(err:find("period", 1, true), err)
          T.eq(aws.stats.mutating_calls, before, "no change sent")
          assert_unchanged(name)
          return
        end
        if not im.fails_at then
          T.eq(code, 0, name .. ": " .. tostring(err))
          T.ok(out:find("succeeded", 1, true), out)
          T.eq(seen.max, 100, "the healthy canary reached every step")
          T.eq(R.service("api").td, "api:2", "stable promoted")
          T.eq(R.weights(), { ["api-stable"] = 100, ["api-canary"] = 0 })
        else
          T.eq(code, 1, name .. ": " .. tostring(err))
          T.ok(err:find("GateFailed", 1, true) or err:find("gate", 1, true), err)
          -- the failing step is the last one the canary ever got
          T.eq(seen.max, im.fails_at, "highest canary weight")
          T.eq(R.weights(), { ["api-stable"] = 100, ["api-canary"] = 0 }, "rolled back")
          T.eq(R.service("api").td, "api:1", "stable untouched")
        end
      end)
    end
  end
end

---------------------------------------------------------------- the simulator's delay

-- The newest minute GetMetricData answers for api-stable's RequestCount now (nil: none).
local function newest_minute()
  local dims = gate.alb_dimensions("api-stable")
  local now = sched.now()
  local res = cloudwatch.get_metric_data { StartTime = now - 900, EndTime = now, MetricDataQueries = {
    { Id = "r", MetricStat = { Period = 60, Stat = "Sum", Metric = { Namespace = "AWS/ApplicationELB",
      MetricName = "RequestCount", Dimensions = dims } } } } }
  return res.MetricDataResults[1].Timestamps[1]
end

local function statistics_newest()
  local dims = gate.alb_dimensions("api-stable")
  local now = sched.now()
  local res = cloudwatch.get_metric_statistics { Namespace = "AWS/ApplicationELB", MetricName = "RequestCount",
    Dimensions = dims, StartTime = now - 900, EndTime = now, Period = 60, Statistics = { "Sum" } }
  local newest
  for _, dp in ipairs(res.Datapoints) do
    if not newest or dp.Timestamp > newest then newest = dp.Timestamp end
  end
  return newest
end

T.test("a minute's ALB datapoints become visible `delay` after the minute ends", function()
  for _, c in ipairs { { "0s", 0 }, { "2m", 120 }, { "3m", 180 }, { "90s", 90 } } do
    world_with(c[1])
    sched.sleep(37) -- not on a minute boundary
    local now = sched.now()
    -- the newest minute m with m + 60 + delay <= now
    local want = math.floor((now - 60 - c[2]) / 60) * 60
    T.eq(newest_minute(), want, "GetMetricData, delay " .. c[1])
    T.eq(statistics_newest(), want, "GetMetricStatistics, delay " .. c[1])
    sched.sleep(60)
    T.eq(newest_minute(), want + 60, "a minute later, delay " .. c[1])
  end
end)

T.test("the default world publishes with a 2-minute delay (docs/simulator.md cites AWS)", function()
  R.fresh()
  sched.sleep(37)
  T.eq(newest_minute(), math.floor((sched.now() - 60 - 120) / 60) * 60)
  T.eq(R.sim.world.state.cloudwatch.delay, 120)
end)

T.test("PutMetricData is readable at once (the delay is the ALB's publishing)", function()
  world_with("3m")
  local now = sched.now()
  cloudwatch.put_metric_data { Namespace = "Custom/Test", MetricData = { { MetricName = "Jobs", Value = 7 } } }
  local res = cloudwatch.get_metric_data { StartTime = now - 60, EndTime = now + 60, MetricDataQueries = {
    { Id = "j", MetricStat = { Period = 60, Stat = "Sum", Metric = { Namespace = "Custom/Test",
      MetricName = "Jobs" } } } } }
  T.eq(res.MetricDataResults[1].Values, { 7 })
end)

--[[ api-canary running api:flaky at 25 % from `t0`: when does api-5xx-high go to ALARM?
     Returns the alarm's state at the given offsets from t0. ]]
local function alarm_states(delay, offsets)
  world_with(delay)
  local stable, canary = traffic.target_group_arn("api-stable"), traffic.target_group_arn("api-canary")
  local td = R.register_image("api:1", "api:flaky", "api")
  require("ecsplay.ecs").update_service { cluster = "production", service = "api-canary", taskDefinition = td,
    desiredCount = 2 }
  ecs_util.wait_ready("production", "api-canary", td, 2, { canary }, 600)
  sched.sleep(60 - sched.now() % 60) -- on a minute boundary
  local t0 = sched.now()
  traffic.set(traffic.resolve(nil, { stable, canary }), { [stable] = 75, [canary] = 25 })
  local out = {}
  for i, off in ipairs(offsets) do
    sched.sleep(t0 + off - sched.now())
    out[i] = cloudwatch.describe_alarms { AlarmNames = { "api-5xx-high" } }.MetricAlarms[1].StateValue
  end
  return out
end

T.test("alarms see only published data: api-5xx-high fires a delay later", function()
  -- the first breaching minute is [t0, t0+60): evaluated at t0+60 with no delay
  T.eq(alarm_states("0s", { 30, 65 }), { "OK", "ALARM" }, "no delay")
  T.eq(alarm_states("3m", { 65, 235 }), { "OK", "OK" }, "3m delay: not yet published")
  T.eq(alarm_states("3m", { 245 }), { "ALARM" }, "3m delay: published at t0+240")
end)

---------------------------------------------------------------- windows that belong to the step

local function canary_opts(o)
  local base = {
    cluster = "production", image = "api:v2", container = "api",
    stable = { service = "api", target_group = "api-stable" },
    canary = { service = "api-canary", target_group = "api-canary" },
    steps = { 10, 25, 50, 100 }, bake = "5m", interval = "1m",
    gates = {
      gate.alb_5xx_rate { target_group = "api-canary", below = 1.0 },
      gate.alb_latency { target_group = "api-canary", p = 99, below_ms = 300 },
      gate.alarm { "api-5xx-high" },
    },
  }
  for k, v in pairs(o or {}) do base[k] = v end
  return base
end

T.test("every window judged at a step began after the step's weight was verified and was published", function()
  world_with("2m")
  local code, err, report = R.call(function() return rollout.canary(canary_opts()) end)
  T.eq(code, 0, err)
  T.eq(#report.steps, 4)
  for i, step in ipairs(report.steps) do
    local last_to = 0
    for _, round in ipairs(step.measurements) do
      for _, m in ipairs(round) do
        if m.window then
          T.ok(m.window.from >= step.started, string.format("step %d: window from %d before the step's start %d",
            i, m.window.from, step.started))
          T.ok(m.window.to + gate.DEFAULT_DELAY <= (m.time or step.ended),
            string.format("step %d: a window judged before it was published", i))
          last_to = math.max(last_to, m.window.to)
        end
      end
    end
    -- the bake's five whole minutes, all judged before the verdict
    T.ok(last_to >= step.started + 300, string.format("step %d judged up to %d, started %d", i, last_to,
      step.started))
    T.ok(step.ended >= last_to + gate.DEFAULT_DELAY, "the verdict waited for the last period")
  end
end)

T.test("settle: the first period judged starts settle after the step's start", function()
  world_with("0s")
  local code, err, report = R.call(function()
    return rollout.canary(canary_opts { steps = { 50 }, bake = "3m", gates = {
      gate.alb_5xx_rate { target_group = "api-canary", below = 1.0, settle = "2m", delay = "0s" } } })
  end)
  T.eq(code, 0, err)
  local step = report.steps[1]
  local first
  for _, round in ipairs(step.measurements) do
    for _, m in ipairs(round) do first = first or m.window end
  end
  T.ok(first and first.from >= step.started + 120, "first window starts after the settle time")
end)

T.test("gates on 5-minute metrics: healthy promotes, api:flaky is rolled back at 25 %", function()
  local gates5 = function()
    return {
      gate.alb_5xx_rate { target_group = "api-canary", below = 1.0, period = 300 },
      gate.alb_latency { target_group = "api-canary", below_ms = 300, period = 300 },
    }
  end
  world_with("2m")
  local code, err, report = R.call(function()
    return rollout.canary(canary_opts { steps = { 25, 100 }, bake = "10m", interval = "5m", gates = gates5() })
  end)
  T.eq(code, 0, err)
  for _, step in ipairs(report.steps) do
    for _, round in ipairs(step.measurements) do
      for _, m in ipairs(round) do
        T.eq(m.window.from % 300, 0, "5-minute periods")
        T.eq((m.window.to - m.window.from) % 300, 0, "5-minute periods")
      end
    end
  end
  local sim = world_with("2m")
  local seen = watch_canary_weight(sim)
  code, err = R.call(function()
    return rollout.canary(canary_opts { image = "api:flaky", steps = { 10, 25, 100 }, bake = "10m",
      interval = "5m", gates = gates5() })
  end)
  seen.stop()
  T.eq(code, 1, err)
  T.eq(seen.max, 25)
end)

T.test("the gate's log line names the window it judged", function()
  local out, rc = T.sh(T.bin .. " --simulate playbooks/canary.lua image=api:v2 bake=2m")
  T.eq(rc, 0, out)
  local step_at = out:match("%[(%d%d:%d%d):%d%d%] step 1/4")
  T.ok(step_at, out)
  -- the round's line: each gate's value, then the window its metric gates judged
  local from, to = out:match("step 1/4 10%% [^\n]* 5xx [%d.]+%% < 1%% ✓[^\n]*%[(%d%d:%d%d)%-(%d%d:%d%d)%]\n")
  T.ok(from and to, out)
  T.ok(from >= step_at, "the first window starts at or after step 1 (" .. step_at .. "): " .. from)
end)

---------------------------------------------------------------- refused before any change

T.test("the issue's command: a 5 s bake of api:flaky is refused, not promoted", function()
  local out, rc = T.sh(T.bin .. " --simulate playbooks/canary.lua image=api:flaky bake=5s")
  T.eq(rc, 2, out)
  T.ok(out:find("rollout.canary: bake:", 1, true), out)
  T.ok(not out:find("promoted", 1, true), out)
end)

T.test("an interval or bake shorter than a gate's period is refused, naming the field", function()
  world_with("2m")
  local g = function() return { gate.alb_5xx_rate { target_group = "api-canary", below = 1, period = 300 } } end
  local code, err = R.call(function() return rollout.canary(canary_opts { gates = g(), interval = "1m", bake = "10m" }) end)
  T.eq(code, 2, err)
  T.ok(err:find("rollout.canary: interval:", 1, true), err)
  T.ok(err:find("5m", 1, true), err)
  code, err = R.call(function() return rollout.canary(canary_opts { gates = g(), interval = "5m", bake = "4m" }) end)
  T.eq(code, 2, err)
  T.ok(err:find("rollout.canary: bake:", 1, true), err)
  assert_unchanged("refused")
  -- gates without a period (alarms, probes) allow any bake
  code, err = R.call(function()
    return rollout.canary(canary_opts { steps = { 50 }, bake = "5s", interval = "1s",
      gates = { gate.alarm { "api-5xx-high" } } })
  end)
  T.eq(code, 0, err)
end)

T.test("bad window options of a gate are refused, naming the field", function()
  local cases = {
    { { period = 90 }, "period" }, { { period = 30 }, "period" }, { { delay = "soon" }, "delay" },
    { { settle = -5 }, "settle" }, { { window = "30s" }, "window" }, { { window = "90s", period = 120 }, "window" },
  }
  for _, c in ipairs(cases) do
    local o = { target_group = "api-canary", below = 1 }
    for k, v in pairs(c[1]) do o[k] = v end
    local e = T.raises(function() gate.alb_5xx_rate(o) end, "gate.alb_5xx_rate: " .. c[2] .. ":")
    T.ok(errors.is(e, "bad_input"), tostring(e))
    T.eq(e.field, c[2])
  end
  T.raises(function() gate.cloudwatch { namespace = "N", metric = "M", below = 1, delay = "x" } end,
    "gate.cloudwatch: delay:")
end)

T.test("scenario metrics: delay is checked, unknown fields refused with the file's line", function()
  local dir = T.tmpdir()
  local path = dir .. "/s.lua"
  local function load_with(body)
    local f = assert(io.open(path, "w"))
    f:write("return {\n  seed = 1,\n" .. body .. "\n}\n")
    f:close()
    local ok, e = pcall(scenario.load, path)
    return ok, e
  end
  local ok, e = load_with('  metrics = { delay = "soon" },')
  T.ok(not ok and errors.is(e, "scenario"), tostring(e))
  T.ok(tostring(e):find("s.lua:3: metrics.delay:", 1, true), tostring(e))
  ok, e = load_with('  metrics = { dealy = "2m" },')
  T.ok(not ok and tostring(e):find('metrics.dealy: unknown field "dealy"; did you mean "delay"', 1, true), tostring(e))
  ok, e = load_with('  metrics = { delay = "2m" },')
  T.ok(ok, tostring(e))
  T.eq(e.metrics.delay, 120)
  T.sh("rm -rf '" .. dir .. "'")
end)

---------------------------------------------------------------- a broken scenario fails the run

T.test("a failing behaviour function fails the run with the scenario's file and line", function()
  local out, rc = T.sh(T.bin .. " --simulate=tests/scenarios/behaviour_error.lua playbooks/canary.lua image=api:v2")
  T.eq(rc, 1, out)
  T.ok(out:find("tests/scenarios/behaviour_error.lua:9:", 1, true), out)
  T.ok(out:find("error_rate", 1, true), out)
  T.ok(not out:find("promoted", 1, true), out)
  -- in process: the same, and traffic is back on stable
  R.fresh(scenario.load("tests/scenarios/behaviour_error.lua"))
  local code, err = R.playbook("playbooks/canary.lua", { image = "api:v2" })
  T.eq(code, 1, err)
  T.ok(err:find("behaviour_error.lua:9:", 1, true), err)
  T.eq(R.weights(), { ["api-stable"] = 100, ["api-canary"] = 0 })
  T.eq(R.service("api").td, "api:1")
end)

T.test("fail_at_50.lua: rolled back at 50 % with CloudWatch 3 minutes late", function()
  local out, rc = T.sh(T.bin .. " --simulate=tests/scenarios/fail_at_50.lua playbooks/canary.lua image=api:fail50")
  T.eq(rc, 1, out)
  T.ok(out:find("step 3/4", 1, true), out)
  T.ok(not out:find("step 4/4", 1, true), out)
end)
