-- ALB metrics synthesised when read (sim/cloudwatch/alb.lua): the same numbers whatever order
-- and however late they are asked for, reading changes no state, steady traffic keeps no
-- samples (only a run of inputs per target group), and retention forgets old inputs.
local T = require "harness"
local World = require "ecsplay.sim.world"
local elbv2 = require "ecsplay.sim.elbv2"
local cloudwatch = require "ecsplay.sim.cloudwatch"
local store = require "ecsplay.sim.cloudwatch.store"
local alb = require "ecsplay.sim.cloudwatch.alb"
local dump = require "ecsplay.sim.dump"

local START = 1795687200 -- a multiple of 60
local NS = "AWS/ApplicationELB"

local IMAGES = { s1 = "api:v1", s2 = "api:v1", c1 = "api:v2" }
local FAKE_ECS = { name = "ecs", init = function() return {} end,
  task_health = function() return "healthy" end,
  task_info = function(_, arn) return { image = IMAGES[arn] } end,
  image_first_start = function() return START end }

local function cw(w, op, input) return cloudwatch.ops[op](w, input or {}) end

--[[ A load balancer whose rule splits 90/10 between "stable" (s1, s2) and "canary" (c1, whose
     error rate and p99 follow the weight and the time since it started), and an "idle" group. ]]
local function world()
  local w = World.new { start = START, seed = 23, traffic = { rps = 150 }, scenario = { metrics = { delay = 60 } },
    images = { { key = "api:v2", behaviour = {
      error_rate = function(ctx) return ctx.weight > 20 and 0.05 or 0.002 + ctx.t / 1e6 end,
      latency_ms = { p50 = 45, p99 = function(ctx) return 180 + ctx.weight end } } } } }
  w:add_service(FAKE_ECS)
  w:add_service(elbv2)
  w:add_service(cloudwatch)
  local e = elbv2.ops
  local lb = e.CreateLoadBalancer(w, { Name = "web", Subnets = { "a", "b" } }).LoadBalancers[1].LoadBalancerArn
  local tg = {}
  for _, n in ipairs({ "stable", "canary", "idle" }) do
    tg[n] = e.CreateTargetGroup(w, { Name = n, Protocol = "HTTP", Port = 8080, VpcId = "vpc-0sim",
      TargetType = "ip", HealthCheckIntervalSeconds = 5, HealthCheckTimeoutSeconds = 2,
      HealthyThresholdCount = 2 }).TargetGroups[1].TargetGroupArn
  end
  local l = e.CreateListener(w, { LoadBalancerArn = lb, Port = 443, Protocol = "HTTP",
    DefaultActions = { { Type = "forward", TargetGroupArn = tg.idle } } }).Listeners[1].ListenerArn
  local split = { { TargetGroupArn = tg.stable, Weight = 90 }, { TargetGroupArn = tg.canary, Weight = 10 } }
  local rule = e.CreateRule(w, { ListenerArn = l, Priority = 10,
    Conditions = { { Field = "path-pattern", Values = { "/*" } } },
    Actions = { { Type = "forward", ForwardConfig = { TargetGroups = split } } } }).Rules[1].RuleArn
  elbv2.register(w, tg.stable, "10.0.0.1", 8080, "s1")
  elbv2.register(w, tg.stable, "10.0.0.2", 8080, "s2")
  elbv2.register(w, tg.canary, "10.0.0.3", 8080, "c1")
  return w, tg, rule
end

-- Moves the world through 20 minutes: the canary to 50 % at minute 8, back to 0 at minute 14.
local function story(w, tg, rule, each_minute)
  for minute = 1, 20 do
    if minute == 8 then elbv2.set_forward(w, rule, { [tg.stable] = 50, [tg.canary] = 50 }) end
    if minute == 14 then elbv2.set_forward(w, rule, { [tg.stable] = 100, [tg.canary] = 0 }) end
    w:advance(START + minute * 60)
    if each_minute then each_minute(minute) end
  end
end

local function alb_metrics(w)
  return cw(w, "ListMetrics", { Namespace = NS }).Metrics
end

-- Every datapoint of every ALB series over the run, every statistic: one text per series.
local function read_all(w, metrics, reverse)
  local out = {}
  local first, last, step = 1, #metrics, 1
  if reverse then first, last, step = #metrics, 1, -1 end
  for i = first, last, step do
    local m = metrics[i]
    local res = cw(w, "GetMetricStatistics", { Namespace = NS, MetricName = m.MetricName, Dimensions = m.Dimensions,
      StartTime = START - 600, EndTime = w.now, Period = 60,
      Statistics = { "SampleCount", "Sum", "Minimum", "Maximum", "Average" }, ExtendedStatistics = { "p50", "p99" } })
    local lines = {}
    for _, dp in ipairs(res.Datapoints) do
      lines[#lines + 1] = string.format("%d %.17g %.17g %.17g %.17g %.17g %.17g", dp.Timestamp, dp.SampleCount,
        dp.Sum, dp.Minimum, dp.Maximum, dp.ExtendedStatistics.p50, dp.ExtendedStatistics.p99)
    end
    local key = m.MetricName
    for _, d in ipairs(m.Dimensions) do key = key .. " " .. d.Name .. "=" .. d.Value end
    out[key] = table.concat(lines, "\n")
  end
  return out
end

local function state_text(w) return dump.state({ world = w }) end

T.test("read minute by minute or all at the end, in any order: the same numbers", function()
  local early, tg1, rule1 = world()
  -- a gate's reading: the last five minutes, every minute, as the run goes
  story(early, tg1, rule1, function()
    for _, m in ipairs(alb_metrics(early)) do
      cw(early, "GetMetricData", { StartTime = early.now - 300, EndTime = early.now, MetricDataQueries = {
        { Id = "q", MetricStat = { Metric = m, Period = 60, Stat = "p99" } } } })
    end
  end)
  local late, tg2, rule2 = world()
  story(late, tg2, rule2)
  local a, b = read_all(early, alb_metrics(early)), read_all(late, alb_metrics(late), true)
  T.eq(alb_metrics(early), alb_metrics(late), "the same series, listed in the same order")
  local n = 0
  for key, text in pairs(a) do
    n = n + 1
    T.eq(b[key], text, key)
  end
  T.ok(n >= 10, "series read: " .. n)
  T.ok(a["RequestCount LoadBalancer=" .. elbv2.arn_suffix(
    early.state.elbv2.lbs[1].arn, "lb")]:find("\n"), "the load balancer's own series has datapoints")
end)

T.test("reading metrics changes no state; steady traffic keeps inputs, not samples", function()
  local w, tg, rule = world()
  story(w, tg, rule)
  local before = state_text(w)
  read_all(w, alb_metrics(w))
  T.eq(state_text(w), before, "the world's state after reading every ALB series")
  local s = store.st(w)
  for _, ser in ipairs(s.series_list) do
    if ser.ns == NS then T.eq(#ser.samples, 0, ser.name .. " keeps no samples") end
  end
  -- the canary's inputs changed when it got 50 % and when it went back to 0 (and once at the start)
  local runs = #s.alb.tgs[tg.canary].runs
  T.ok(runs >= 3 and runs <= 6, "canary input runs: " .. runs)
end)

T.test("the publishing delay: a minute is seen only once it is published", function()
  local w, tg, rule = world()
  story(w, tg, rule)
  local m = alb_metrics(w)[1]
  local res = cw(w, "GetMetricStatistics", { Namespace = NS, MetricName = m.MetricName, Dimensions = m.Dimensions,
    StartTime = START, EndTime = w.now, Period = 60, Statistics = { "SampleCount" } })
  local newest = 0
  for _, dp in ipairs(res.Datapoints) do newest = math.max(newest, dp.Timestamp) end
  -- minute [t, t+60) is published at t+60 and shown metrics.delay (60 s) later
  T.eq(newest, w.now - 120)
end)

T.test("retention: inputs older than the cutoff are forgotten, newer minutes still read", function()
  local w, tg, rule = world()
  story(w, tg, rule)
  local cutoff = START + 15 * 60
  alb.prune(w, cutoff)
  store.prune(w, cutoff)
  for _, t in pairs(store.st(w).alb.tgs) do
    T.ok(#t.runs >= 1 and (t.runs[2] == nil or t.runs[2].m > cutoff), "runs start at the cutoff")
  end
  local dims = { { Name = "LoadBalancer", Value = elbv2.arn_suffix(w.state.elbv2.lbs[1].arn, "lb") },
    { Name = "TargetGroup", Value = elbv2.arn_suffix(tg.stable, "tg") } }
  local res = cw(w, "GetMetricStatistics", { Namespace = NS, MetricName = "RequestCount",
    Dimensions = dims, StartTime = cutoff, EndTime = w.now, Period = 60, Statistics = { "Sum" } })
  T.ok(#res.Datapoints >= 3, "minutes after the cutoff: " .. #res.Datapoints)
end)
