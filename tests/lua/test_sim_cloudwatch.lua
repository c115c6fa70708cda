-- The simulated CloudWatch: metric statistics, metric math, ALB metrics that follow
-- the ELBv2 weights and image behaviour, alarms from metrics and from scenario scripts.
local T = require "harness"
local World = require "ecsplay.sim.world"
local elbv2 = require "ecsplay.sim.elbv2"
local cloudwatch = require "ecsplay.sim.cloudwatch"
local MM = require "ecsplay.sim.cloudwatch.metric_math"

local START = 1795687200 -- a multiple of 60

local function new_world(opts)
  opts = opts or {}
  local w = World.new { start = START, seed = 11, images = opts.images, scenario = opts.scenario,
    traffic = opts.traffic }
  if opts.ecs then w:add_service(opts.ecs) end
  if opts.elbv2 then w:add_service(elbv2) end
  w:add_service(cloudwatch)
  return w
end

local function cw(w, op, input, caller) return cloudwatch.ops[op](w, input or {}, caller) end

local function fails(w, op, input, code, status)
  local err = T.raises(function() cw(w, op, input) end)
  T.ok(w:is_error(err), "expected a simulator error from " .. op)
  T.eq(err.code, code, op .. " error code")
  T.eq(err.status, status or 400, op .. " status")
  return err
end

local DIMS = { { Name = "Service", Value = "api" } }

local function stat_query(id, name, stat, period, extra)
  local q = { Id = id, MetricStat = { Metric = { Namespace = "App", MetricName = name, Dimensions = DIMS },
    Period = period or 60, Stat = stat } }
  for k, v in pairs(extra or {}) do q[k] = v end
  return q
end

-- 10 minutes of "Latency": minute k has values k, k+1, ..., k+99 (100 samples); "Errors"/"Requests".
local function fill(w)
  for k = 0, 9 do
    local vals = {}
    for i = 0, 99 do vals[#vals + 1] = k + i end
    cw(w, "PutMetricData", { Namespace = "App", MetricData = {
      { MetricName = "Latency", Dimensions = DIMS, Timestamp = START + k * 60 + 10, Values = vals, Unit = "Milliseconds" },
      { MetricName = "Requests", Dimensions = DIMS, Timestamp = START + k * 60 + 20, Value = 100 },
      { MetricName = "Errors", Dimensions = DIMS, Timestamp = START + k * 60 + 20, Value = k },
    } })
  end
end

T.test("PutMetricData then GetMetricData: Sum, Average, SampleCount, p99 over 1 and 5 minute periods", function()
  local w = new_world()
  fill(w)
  local out = cw(w, "GetMetricData", { StartTime = START, EndTime = START + 600,
    MetricDataQueries = {
      stat_query("sum", "Latency", "Sum"), stat_query("avg", "Latency", "Average"),
      stat_query("n", "Latency", "SampleCount"), stat_query("p99", "Latency", "p99"),
      stat_query("max5", "Latency", "Maximum", 300), stat_query("p50_5", "Latency", "p50", 300),
    } })
  local r = {}
  for _, res in ipairs(out.MetricDataResults) do r[res.Id] = res end
  T.eq(#out.MetricDataResults, 6)
  T.eq(r.sum.StatusCode, "Complete")
  T.eq(r.sum.Label, "Latency")
  -- newest first by default
  T.eq(r.sum.Timestamps[1], START + 540)
  T.eq(#r.sum.Timestamps, 10)
  T.eq(r.sum.Values[1], 9 * 100 + 4950)
  T.eq(r.avg.Values[10], 49.5)
  T.eq(r.n.Values[5], 100)
  T.eq(r.p99.Values[10], 98)
  T.eq(r.max5.Timestamps, { START + 300, START })
  T.eq(r.max5.Values, { 9 + 99, 4 + 99 })
  T.near(r.p50_5.Values[2], 51, 1) -- minutes 0-4: values 0..103
  local asc = cw(w, "GetMetricData", { StartTime = START, EndTime = START + 600, ScanBy = "TimestampAscending",
    MetricDataQueries = { stat_query("e", "Errors", "Sum") } }).MetricDataResults[1]
  T.eq(asc.Values, { 0, 1, 2, 3, 4, 5, 6, 7, 8, 9 })
  -- ReturnData false hides a query; MaxDatapoints paginates
  local page = cw(w, "GetMetricData", { StartTime = START, EndTime = START + 600, MaxDatapoints = 4,
    MetricDataQueries = { stat_query("e", "Errors", "Sum"), stat_query("h", "Requests", "Sum", 60, { ReturnData = false }) } })
  T.eq(#page.MetricDataResults, 1)
  T.eq(page.MetricDataResults[1].Values, { 9, 8, 7, 6 })
  T.eq(page.MetricDataResults[1].StatusCode, "PartialData")
  T.ok(page.NextToken)
  local page2 = cw(w, "GetMetricData", { StartTime = START, EndTime = START + 600, MaxDatapoints = 4,
    NextToken = page.NextToken, MetricDataQueries = { stat_query("e", "Errors", "Sum") } })
  T.eq(page2.MetricDataResults[1].Values, { 5, 4, 3, 2 })
  fails(w, "GetMetricData", { StartTime = START, EndTime = START + 600, NextToken = "bogus",
    MetricDataQueries = { stat_query("e", "Errors", "Sum") } }, "InvalidNextToken")
end)

T.test("metric math: m1/m2*100, FILL, SUM(METRICS()), errors", function()
  local w = new_world()
  fill(w)
  local function run(expr, period)
    return cw(w, "GetMetricData", { StartTime = START, EndTime = START + 600, ScanBy = "TimestampAscending",
      MetricDataQueries = {
        stat_query("m1", "Errors", "Sum", period, { ReturnData = false }),
        stat_query("m2", "Requests", "Sum", period, { ReturnData = false }),
        { Id = "e1", Expression = expr, Label = "rate" },
      } }).MetricDataResults
  end
  local r = run("m1/m2*100")
  T.eq(#r, 1)
  T.eq(r[1].Id, "e1")
  T.eq(r[1].Label, "rate")
  T.eq(#r[1].Values, 10)
  for i = 1, 10 do T.near(r[1].Values[i], i - 1, 1e-9) end
  T.eq(r[1].Timestamps[1], START)
  T.eq(run("(m1 + m2) / 2 - -1")[1].Values[3], (2 + 100) / 2 + 1)
  T.eq(run("SUM(METRICS())")[1].Values[2], 101)
  T.eq(run("MAX([m1, m2])")[1].Values[2], 100)
  T.eq(run("m1 / m1")[1].Values[1], 2 / 2, "0/0 is dropped: the first point is minute 1")
  T.eq(#run("m1 / m1")[1].Values, 9)
  -- a scalar becomes a flat line over the grid
  local avg = run("AVG(m1)")[1]
  T.eq(#avg.Values, 10)
  T.eq(avg.Values[1], 4.5)
  -- FILL over a gap: Errors has no data after 10 min, ask for 12
  local f = cw(w, "GetMetricData", { StartTime = START, EndTime = START + 720, ScanBy = "TimestampAscending",
    MetricDataQueries = { stat_query("m1", "Errors", "Sum", 60, { ReturnData = false }),
      { Id = "z", Expression = "FILL(m1, 0)" }, { Id = "r", Expression = "FILL(m1, REPEAT)" } } }).MetricDataResults
  T.eq(#f[1].Values, 12)
  T.eq(f[1].Values[12], 0)
  T.eq(f[2].Values[12], 9)
  for _, bad in ipairs({ "m1 +", "FOO(m1)", "m3 * 2", "METRICS()", "m1 $ 2" }) do
    local e = fails(w, "GetMetricData", { StartTime = START, EndTime = START + 600,
      MetricDataQueries = { stat_query("m1", "Errors", "Sum"), { Id = "e1", Expression = bad } } }, "ValidationError")
    T.ok(e.message:find("e1", 1, true), e.message)
  end
  fails(w, "GetMetricData", { StartTime = START, EndTime = START + 600,
    MetricDataQueries = { { Id = "a", Expression = "b" }, { Id = "b", Expression = "a" } } }, "ValidationError")
  fails(w, "GetMetricData", { StartTime = START, EndTime = START + 600,
    MetricDataQueries = { stat_query("m1", "Errors", "tm99") } }, "ValidationError")
  fails(w, "GetMetricData", { StartTime = START, EndTime = START + 600,
    MetricDataQueries = { stat_query("M1", "Errors", "Sum") } }, "ValidationError")
  fails(w, "GetMetricData", { StartTime = START + 600, EndTime = START,
    MetricDataQueries = { stat_query("m1", "Errors", "Sum") } }, "ValidationError")
end)

T.test("metric_math module: parse errors and array semantics", function()
  T.eq(select(2, MM.parse("(m1")), "expected ')' at end")
  local env = { period = 60, grid = function() return { 0, 60, 120 } end,
    lookup = function(id)
      if id == "a" then return MM.series({ 0, 60 }, { 1, 2 }, 60) end
      if id == "b" then return MM.series({ 60, 120 }, { 10, 20 }, 60) end
    end, metrics = function() return {} end }
  local v = MM.eval("a + b", env)
  T.eq(v.ts, { 60 })
  T.eq(v.vs, { 12 })
  v = MM.eval("SUM([a, b])", env)
  T.eq(v.ts, { 0, 60, 120 })
  T.eq(v.vs, { 1, 12, 20 })
  v = MM.eval("FILL(a, LINEAR)", env)
  T.eq(v.vs, { 1, 2 }, "no value after the last point to interpolate to")
  T.eq(MM.eval("2 ^ 3 * 2", env).v, 16)
  local _, err = MM.eval("RATE(1)", env)
  T.ok(err:find("RATE"), err)
end)

T.test("GetMetricStatistics: Statistics and ExtendedStatistics", function()
  local w = new_world()
  fill(w)
  local out = cw(w, "GetMetricStatistics", { Namespace = "App", MetricName = "Latency", Dimensions = DIMS,
    StartTime = START, EndTime = START + 300, Period = 300,
    Statistics = { "Sum", "Average", "SampleCount", "Minimum", "Maximum" }, ExtendedStatistics = { "p90" } })
  T.eq(out.Label, "Latency")
  T.eq(#out.Datapoints, 1)
  local dp = out.Datapoints[1]
  T.eq(dp.Timestamp, START)
  T.eq(dp.SampleCount, 500)
  T.eq(dp.Minimum, 0)
  T.eq(dp.Maximum, 103)
  T.eq(dp.Average, (4950 * 5 + 100 * (0 + 1 + 2 + 3 + 4)) / 500)
  T.eq(dp.Unit, "Milliseconds")
  T.ok(dp.ExtendedStatistics.p90 >= 88 and dp.ExtendedStatistics.p90 <= 93, tostring(dp.ExtendedStatistics.p90))
  -- a different dimension set is a different metric
  T.eq(cw(w, "GetMetricStatistics", { Namespace = "App", MetricName = "Latency", StartTime = START,
    EndTime = START + 300, Period = 60, Statistics = { "Sum" } }).Datapoints, {})
  fails(w, "GetMetricStatistics", { Namespace = "App", MetricName = "Latency", StartTime = START,
    EndTime = START + 300, Period = 60 }, "MissingParameter")
  fails(w, "GetMetricStatistics", { Namespace = "App", MetricName = "Latency", StartTime = START,
    EndTime = START + 86400 * 2, Period = 60, Statistics = { "Sum" } }, "InvalidParameterCombination")
  fails(w, "PutMetricData", { Namespace = "AWS/ApplicationELB", MetricData = { { MetricName = "x", Value = 1 } } },
    "InvalidParameterValue")
  fails(w, "PutMetricData", { Namespace = "App", MetricData = { { MetricName = "x", Value = 1,
    StatisticValues = { SampleCount = 1, Sum = 1, Minimum = 1, Maximum = 1 } } } }, "InvalidParameterCombination")
  local lm = cw(w, "ListMetrics", { Namespace = "App", Dimensions = { { Name = "Service" } } }).Metrics
  T.eq(#lm, 3)
  T.eq(lm[1], { Namespace = "App", MetricName = "Latency", Dimensions = DIMS })
end)

---------------------------------------------------------------- ALB metrics

local function fake_ecs(images)
  return { name = "ecs", init = function() return {} end,
    task_health = function() return "healthy" end,
    task_info = function(_, arn) return { image = images[arn] } end,
    image_first_start = function() return START end }
end

-- An ALB with rule weights 90/10 between "stable" (tasks s1, s2) and "canary" (task c1).
-- CloudWatch shows each minute as soon as it ends (metrics.delay 0), so these tests read
-- the synthesis alone; tests/lua/test_gate_windows.lua covers the publishing delay.
local function alb_world(images, canary_behaviour)
  local imgs = {}
  if canary_behaviour then imgs[1] = { key = "api:v2", behaviour = canary_behaviour } end
  local w = new_world { elbv2 = true, ecs = fake_ecs(images), images = imgs, traffic = { rps = 200 },
    scenario = { metrics = { delay = 0 } } }
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
  local rule = e.CreateRule(w, { ListenerArn = l, Priority = 10,
    Conditions = { { Field = "path-pattern", Values = { "/*" } } },
    Actions = { { Type = "forward", ForwardConfig = { TargetGroups = {
      { TargetGroupArn = tg.stable, Weight = 90 }, { TargetGroupArn = tg.canary, Weight = 10 } } } } } }).Rules[1].RuleArn
  elbv2.register(w, tg.stable, "10.0.0.1", 8080, "s1")
  elbv2.register(w, tg.stable, "10.0.0.2", 8080, "s2")
  elbv2.register(w, tg.canary, "10.0.0.3", 8080, "c1")
  local dims = {}
  for n, arn in pairs(tg) do
    dims[n] = { { Name = "TargetGroup", Value = elbv2.arn_suffix(arn, "tg") },
      { Name = "LoadBalancer", Value = elbv2.arn_suffix(lb, "lb") } }
  end
  return w, tg, dims, rule
end

local function alb_query(id, name, dims, stat)
  return { Id = id, MetricStat = { Metric = { Namespace = "AWS/ApplicationELB", MetricName = name,
    Dimensions = dims }, Period = 60, Stat = stat or "Sum" } }
end

local function results(w, t0, t1, queries)
  local r = {}
  for _, res in ipairs(cw(w, "GetMetricData", { StartTime = t0, EndTime = t1, ScanBy = "TimestampAscending",
      MetricDataQueries = queries }).MetricDataResults) do
    r[res.Id] = res
  end
  return r
end

local function total(vs) local s = 0 for _, v in ipairs(vs) do s = s + v end return s end

T.test("ALB metrics follow the weights: RequestCount at 90% and 10%, none without traffic", function()
  local w, tg, dims, rule = alb_world({ s1 = "api:v1", s2 = "api:v1", c1 = "api:v1" })
  w:advance(START + 11 * 60)
  local r = results(w, START + 60, START + 660, {
    alb_query("stable", "RequestCount", dims.stable), alb_query("canary", "RequestCount", dims.canary),
    alb_query("idle", "RequestCount", dims.idle), alb_query("hh", "HealthyHostCount", dims.stable, "Average"),
  })
  T.eq(#r.stable.Values, 10)
  T.eq(r.stable.Timestamps[1], START + 60)
  for i = 1, 10 do
    T.near(r.stable.Values[i], 200 * 60 * 0.9, 200 * 60 * 0.9 * 0.1, "stable minute " .. i)
    T.near(r.canary.Values[i], 200 * 60 * 0.1, 200 * 60 * 0.1 * 0.1, "canary minute " .. i)
  end
  T.near(total(r.canary.Values) / (total(r.canary.Values) + total(r.stable.Values)), 0.10, 0.01)
  T.eq(r.idle.Values, {}, "no requests, no RequestCount datapoints")
  T.eq(r.hh.Values[5], 2)
  -- shift the weights: the next minutes follow
  elbv2.set_forward(w, rule, { [tg.stable] = 0, [tg.canary] = 100 })
  w:advance(START + 13 * 60)
  r = results(w, START + 12 * 60, START + 13 * 60, {
    alb_query("stable", "RequestCount", dims.stable), alb_query("canary", "RequestCount", dims.canary) })
  T.eq(r.stable.Values, {})
  T.near(r.canary.Values[1], 200 * 60, 200 * 60 * 0.1)
end)

T.test("5xx follows the image's error_rate (a function of weight); latency percentiles from latency_ms", function()
  local flaky = { error_rate = function(ctx) return ctx.weight >= 25 and 0.08 or 0.001 end,
    latency_ms = { p50 = 50, p99 = 400 } }
  local w, tg, dims, rule = alb_world({ s1 = "api:v1", s2 = "api:v1", c1 = "api:v2" }, flaky)
  w:advance(START + 6 * 60)
  local r = results(w, START + 60, START + 360, {
    alb_query("req", "RequestCount", dims.canary), alb_query("err", "HTTPCode_Target_5XX_Count", dims.canary),
    alb_query("ok", "HTTPCode_Target_2XX_Count", dims.canary),
    alb_query("p50", "TargetResponseTime", dims.canary, "p50"),
    alb_query("p99", "TargetResponseTime", dims.canary, "p99"),
    alb_query("avg", "TargetResponseTime", dims.stable, "Average"),
    alb_query("sp99", "TargetResponseTime", dims.stable, "p99"),
  })
  T.ok(total(r.err.Values) / total(r.req.Values) < 0.01, "at 10% weight the canary is clean")
  T.eq(total(r.err.Values) + total(r.ok.Values), total(r.req.Values))
  T.near(r.p50.Values[1], 0.050, 0.005)
  T.near(r.p99.Values[1], 0.400, 0.05)
  -- defaults: p50 40 ms, p99 150 ms -> mean of that lognormal ~ 0.0497 s
  T.near(r.avg.Values[1], 0.0497, 0.006)
  T.near(r.sp99.Values[1], 0.150, 0.02)
  elbv2.set_forward(w, rule, { [tg.stable] = 50, [tg.canary] = 50 })
  w:advance(START + 12 * 60)
  r = results(w, START + 7 * 60, START + 12 * 60, {
    alb_query("req", "RequestCount", dims.canary), alb_query("err", "HTTPCode_Target_5XX_Count", dims.canary) })
  T.near(total(r.req.Values) / 5, 200 * 60 * 0.5, 200 * 60 * 0.5 * 0.05)
  T.near(total(r.err.Values) / total(r.req.Values), 0.08, 0.01)
  -- the same world replays to the same numbers
  local w2, tg2, dims2, rule2 = alb_world({ s1 = "api:v1", s2 = "api:v1", c1 = "api:v2" }, flaky)
  w2:advance(START + 6 * 60)
  elbv2.set_forward(w2, rule2, { [tg2.stable] = 50, [tg2.canary] = 50 })
  w2:advance(START + 12 * 60)
  local r2 = results(w2, START + 7 * 60, START + 12 * 60, {
    alb_query("req", "RequestCount", dims2.canary), alb_query("err", "HTTPCode_Target_5XX_Count", dims2.canary) })
  T.eq(r2.err.Values, r.err.Values)
end)

T.test("no healthy target: requests count as HTTPCode_ELB_5XX_Count", function()
  local w, tg, dims = alb_world({ s1 = "api:v1", s2 = "api:v1", c1 = "api:v1" })
  elbv2.deregister(w, tg.canary, "10.0.0.3", 8080)
  w:advance(START + 3 * 60)
  local r = results(w, START, START + 180, {
    alb_query("elb", "HTTPCode_ELB_5XX_Count", dims.canary), alb_query("t5", "HTTPCode_Target_5XX_Count", dims.canary),
    alb_query("req", "RequestCount", dims.canary) })
  T.eq(#r.elb.Values, 3)
  T.eq(r.elb.Values, r.req.Values)
  T.eq(r.t5.Values, {})
end)

---------------------------------------------------------------- alarms

local function alarm(w, name)
  return cw(w, "DescribeAlarms", { AlarmNames = { name } }).MetricAlarms[1]
end

T.test("alarms: INSUFFICIENT_DATA at creation, OK then ALARM from metrics, history", function()
  local w = new_world()
  cw(w, "PutMetricAlarm", { AlarmName = "errors-high", Namespace = "App", MetricName = "Errors", Dimensions = DIMS,
    Statistic = "Sum", Period = 60, EvaluationPeriods = 2, DatapointsToAlarm = 2, Threshold = 5,
    ComparisonOperator = "GreaterThanThreshold" })
  local a = alarm(w, "errors-high")
  T.eq(a.StateValue, "INSUFFICIENT_DATA")
  T.eq(a.StateReason, "Unchecked: Initial alarm creation")
  T.eq(a.AlarmArn, "arn:aws:cloudwatch:us-east-1:123456789012:alarm:errors-high")
  T.eq(a.TreatMissingData, "missing")
  T.eq(a.Dimensions, DIMS)
  for k = 0, 9 do
    cw(w, "PutMetricData", { Namespace = "App", MetricData = {
      { MetricName = "Errors", Dimensions = DIMS, Timestamp = START + k * 60 + 1, Value = k < 5 and 1 or 20 } } })
  end
  w:advance(START + 3 * 60)
  a = alarm(w, "errors-high")
  T.eq(a.StateValue, "OK")
  T.ok(a.StateReason:find("^Threshold Crossed: 1 out of the last 2 datapoints %[1%.0 %(26/11/26 10:00:00%)%] was not greater than the threshold %(5%.0%)"), a.StateReason)
  T.eq(a.StateUpdatedTimestamp, START + 60, "first evaluation, one minute of data")
  w:advance(START + 6 * 60)
  T.eq(alarm(w, "errors-high").StateValue, "OK", "one breaching minute of two")
  w:advance(START + 7 * 60)
  a = alarm(w, "errors-high")
  T.eq(a.StateValue, "ALARM")
  T.ok(a.StateReason:find("greater than the threshold %(5%.0%)"), a.StateReason)
  T.eq(cloudwatch.alarm_state(w, "errors-high"), "ALARM")
  T.eq(cloudwatch.alarm_state(w, "nope"), nil)
  T.eq(#cw(w, "DescribeAlarms", { StateValue = "OK" }).MetricAlarms, 0)
  -- SetAlarmState is temporary: the next evaluation restores the real state
  cw(w, "SetAlarmState", { AlarmName = "errors-high", StateValue = "OK", StateReason = "testing" })
  T.eq(cloudwatch.alarm_state(w, "errors-high"), "OK")
  w:advance(START + 8 * 60)
  T.eq(cloudwatch.alarm_state(w, "errors-high"), "ALARM")
  local h = cw(w, "DescribeAlarmHistory", { AlarmName = "errors-high", HistoryItemType = "StateUpdate" })
    .AlarmHistoryItems
  T.eq(h[1].HistorySummary, "Alarm updated from OK to ALARM")
  T.eq(h[#h].HistorySummary, "Alarm updated from INSUFFICIENT_DATA to OK")
  -- no data for the whole window: missing -> INSUFFICIENT_DATA, notBreaching -> OK
  w:advance(START + 13 * 60)
  T.eq(cloudwatch.alarm_state(w, "errors-high"), "INSUFFICIENT_DATA")
  cw(w, "PutMetricAlarm", { AlarmName = "errors-high", Namespace = "App", MetricName = "Errors", Dimensions = DIMS,
    Statistic = "Sum", Period = 60, EvaluationPeriods = 2, Threshold = 5,
    ComparisonOperator = "GreaterThanThreshold", TreatMissingData = "notBreaching" })
  T.eq(cloudwatch.alarm_state(w, "errors-high"), "INSUFFICIENT_DATA", "an update keeps the state")
  w:advance(START + 14 * 60)
  T.eq(cloudwatch.alarm_state(w, "errors-high"), "OK")
  fails(w, "SetAlarmState", { AlarmName = "nope", StateValue = "OK", StateReason = "x" }, "ResourceNotFound", 404)
  cw(w, "DeleteAlarms", { AlarmNames = { "errors-high", "nope" } })
  T.eq(cw(w, "DescribeAlarms", {}).MetricAlarms, {})
end)

T.test("alarm on a metric math expression (error rate percent)", function()
  local w = new_world()
  cw(w, "PutMetricAlarm", { AlarmName = "rate", EvaluationPeriods = 1, Threshold = 10,
    ComparisonOperator = "GreaterThanOrEqualToThreshold", Metrics = {
      stat_query("m1", "Errors", "Sum", 60, { ReturnData = false }),
      stat_query("m2", "Requests", "Sum", 60, { ReturnData = false }),
      { Id = "e1", Expression = "m1/m2*100", ReturnData = true } } })
  for k = 0, 3 do
    cw(w, "PutMetricData", { Namespace = "App", MetricData = {
      { MetricName = "Requests", Dimensions = DIMS, Timestamp = START + k * 60, Value = 100 },
      { MetricName = "Errors", Dimensions = DIMS, Timestamp = START + k * 60, Value = k < 2 and 1 or 15 } } })
  end
  w:advance(START + 2 * 60)
  T.eq(cloudwatch.alarm_state(w, "rate"), "OK")
  w:advance(START + 3 * 60)
  T.eq(cloudwatch.alarm_state(w, "rate"), "ALARM")
  T.eq(alarm(w, "rate").Metrics[3].Expression, "m1/m2*100")
  local e = T.raises(function()
    cw(w, "PutMetricAlarm", { AlarmName = "bad", EvaluationPeriods = 1, Threshold = 1,
      ComparisonOperator = "GreaterThanThreshold", Metrics = { { Id = "e1", Expression = "NOPE(1)" } } })
  end)
  T.eq(e.code, "ValidationError")
end)

T.test("ALB 5xx alarm fires from synthesized metrics", function()
  local bad = { error_rate = 0.2 }
  local w, tg, dims = alb_world({ s1 = "api:v1", s2 = "api:v1", c1 = "api:v2" }, bad)
  cw(w, "PutMetricAlarm", { AlarmName = "canary-5xx", Namespace = "AWS/ApplicationELB",
    MetricName = "HTTPCode_Target_5XX_Count", Dimensions = dims.canary, Statistic = "Sum", Period = 60,
    EvaluationPeriods = 1, Threshold = 10, ComparisonOperator = "GreaterThanThreshold",
    TreatMissingData = "notBreaching" }, "setup")
  cw(w, "PutMetricAlarm", { AlarmName = "stable-5xx", Namespace = "AWS/ApplicationELB",
    MetricName = "HTTPCode_Target_5XX_Count", Dimensions = dims.stable, Statistic = "Sum", Period = 60,
    EvaluationPeriods = 1, Threshold = 100, ComparisonOperator = "GreaterThanThreshold" })
  w:advance(START + 2 * 60)
  T.eq(cloudwatch.alarm_state(w, "canary-5xx"), "ALARM")
  T.eq(cloudwatch.alarm_state(w, "stable-5xx"), "OK")
  T.ok(tg.canary)
end)

T.test("scenario-scripted alarm states override evaluation", function()
  local w = new_world { scenario = { alarms = {
    ["api-p99-high"] = { state = "OK", ["then"] = { at = "12m", state = "ALARM",
      ["then"] = { at = "1h2m30s", state = "OK" } } },
    ["later"] = { ["then"] = { at = 90, state = "ALARM" } },
  } } }
  T.eq(cloudwatch.alarm_state(w, "api-p99-high"), "OK")
  T.eq(alarm(w, "api-p99-high").StateValue, "OK")
  w:advance(START + 11 * 60 + 55)
  T.eq(cloudwatch.alarm_state(w, "api-p99-high"), "OK")
  w:advance(START + 12 * 60)
  T.eq(cloudwatch.alarm_state(w, "api-p99-high"), "ALARM")
  T.eq(alarm(w, "api-p99-high").StateValue, "ALARM")
  w:advance(START + 3750)
  T.eq(cloudwatch.alarm_state(w, "api-p99-high"), "OK")
  T.eq(cloudwatch.alarm_state(w, "later"), "ALARM")
  -- creating the alarm for real keeps the script in charge
  cw(w, "PutMetricAlarm", { AlarmName = "later", Namespace = "App", MetricName = "Errors", Statistic = "Sum",
    Period = 60, EvaluationPeriods = 1, Threshold = 1, ComparisonOperator = "GreaterThanThreshold" })
  w:advance(START + 3900)
  T.eq(cloudwatch.alarm_state(w, "later"), "ALARM")
  T.raises(function() new_world { scenario = { alarms = { x = { state = "RED" } } } } end, 'alarms%["x"%]%.state')
  T.raises(function() new_world { scenario = { alarms = { x = { ["then"] = { at = "soon", state = "OK" } } } } } end,
    'alarms%["x"%]%.then%.at')
end)

T.test("parse_duration", function()
  local p = cloudwatch.parse_duration
  T.eq(p(90, "x"), 90)
  T.eq(p("90s", "x"), 90)
  T.eq(p("5m", "x"), 300)
  T.eq(p("1h30m", "x"), 5400)
  T.eq(p("45", "x"), 45)
  T.raises(function() p("5 minutes", "here") end, "^here: bad duration .*expected")
end)
