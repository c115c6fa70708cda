-- Shared polling (aws/batch.lua): the same multi-service rehearsal batched and unbatched gives
-- the same reports and the same final world with fewer calls (counted as the simulator
-- receives them); merged calls split back per caller exactly as unmerged calls answer, errors
-- included; aws.stats() counts calls and items per operation.
local T = require "harness"
local R = require "rollout_sim"
local W = require "fleet_world"
local aws = require "ecsplay.aws"
local batch = require "ecsplay.aws.batch"
local gate = require "ecsplay.gate"
local json = require "ecsplay.json"
local errors = require "ecsplay.errors"
local sched = require "ecsplay.sched"
local ecsplay = require "ecsplay"

local received -- "service.Operation" → requests the simulator received

-- A fresh world of n pairs, the client batching or not, counting what reaches the simulator.
local function fresh(n, batching)
  local sim = R.fresh(W.scenario(n))
  received = W.counting_client(sim, { batching = batching,
    rate_limits = false }) -- the same timeline both ways: no waits for tokens
  return sim
end

local function total(counts)
  local n = 0
  for _, c in pairs(counts) do n = n + c end
  return n
end

-- Reports without what differs between any two runs (ids, journal paths).
local function comparable(reports)
  local out = {}
  for i, r in ipairs(reports) do
    local c = {}
    for k, v in pairs(r) do if k ~= "run_id" and k ~= "journal" then c[k] = v end end
    out[i] = c
  end
  return out
end

local function every_gate(tg)
  return {
    gate.alb_5xx_rate { target_group = tg, below = 1.0 },
    gate.alb_latency { target_group = tg, p = 99, below_ms = 300 },
    gate.alb_healthy_hosts { target_group = tg, at_least = 1 },
    gate.alb_healthy_hosts { target_group = tg, at_least = 1, name = "canary hosts again" },
    gate.alarm { "api-5xx-high" },
  }
end

-- n pairs' canaries at once; gates_of(canary target group) → their gates (default: every_gate)
local function rehearse(n, batching, gates_of)
  local sim = fresh(n, batching)
  local list = {}
  for i = 1, n do list[i] = i end
  local reports = ecsplay.map(list, function(i)
    local tg = ("svc%d-canary"):format(i)
    return W.canary(i, "api:v2", { steps = { 25, 100 }, bake = "2m", gates = (gates_of or every_gate)(tg) })
  end)
  local world = sim:handle { method = "GET", path = "/_sim/world", headers = {} }
  return { reports = comparable(reports), world = json.decode(world.body), now = sched.now(),
    received = received }
end

T.test("batched and unbatched rehearsals: same reports, same final world, fewer calls", function()
  local plain = rehearse(6, false)
  local batched = rehearse(6, true)
  for _, r in ipairs(batched.reports) do T.eq(r.status, "succeeded") end
  T.eq(batched.reports, plain.reports, "reports")
  T.eq(batched.world, plain.world, "final world")
  T.eq(batched.now, plain.now, "same end time")
  local b, p = batched.received, plain.received
  -- what changes the world is never merged
  for _, op in ipairs { "ecs.UpdateService", "ecs.RegisterTaskDefinition", "elasticloadbalancing.ModifyListener" } do
    T.eq(b[op], p[op], op)
  end
  T.ok(b["ecs.DescribeServices"] * 3 <= p["ecs.DescribeServices"], "DescribeServices merged")
  T.ok(b["monitoring.GetMetricData"] * 4 <= p["monitoring.GetMetricData"], "GetMetricData merged")
  T.ok(b["monitoring.DescribeAlarms"] * 4 <= p["monitoring.DescribeAlarms"], "DescribeAlarms merged")
  T.ok(b["elasticloadbalancing.DescribeTargetHealth"] < p["elasticloadbalancing.DescribeTargetHealth"],
    "DescribeTargetHealth once per target group and round")
  T.ok(total(b) * 2 < total(p), string.format("calls: %d batched, %d unbatched", total(b), total(p)))
end)

T.test("a rollout's metric gates share one GetMetricData a round: more gates, no more calls", function()
  local function one(tg) return { gate.alb_5xx_rate { target_group = tg, below = 1.0 } } end
  local function three(tg)
    return { gate.alb_5xx_rate { target_group = tg, below = 1.0 },
      gate.alb_latency { target_group = tg, p = 99, below_ms = 300 },
      gate.alb_latency { target_group = tg, p = 50, below_ms = 200, name = "median latency" } }
  end
  local calls = {}
  for _, case in ipairs { { "one", one, true }, { "three", three, true }, { "three alone", three, false } } do
    local r = rehearse(1, case[3], case[2])
    T.eq(r.reports[1].status, "succeeded", case[1])
    calls[case[1]] = r.received["monitoring.GetMetricData"]
  end
  T.ok(calls.one > 0, "the gates measured")
  T.eq(calls.three, calls.one, "three gates batched: as many calls as one gate")
  T.eq(calls["three alone"], 3 * calls.one, "unbatched: a call a gate and round")
end)

-- Runs fns at the same instant, each in a task; → their results (ok, value) in order.
local function together(fns)
  local tasks, out = {}, {}
  for i, fn in ipairs(fns) do tasks[i] = sched.spawn(fn) end
  for i, t in ipairs(tasks) do out[i] = table.pack(t:result()) end
  return out
end

T.test("DescribeServices: 10 services a call, each caller its own services and failures", function()
  fresh(3, true)
  local before = aws.stats()["ecs.DescribeServices"] or { calls = 0, items = 0 }
  local asks = {}
  for i = 1, 23 do
    asks[i] = i % 4 == 0 and { "missing" .. i } or { "svc" .. (i % 3 + 1), ("svc%d-canary"):format(i % 3 + 1) }
  end
  local fns = {}
  for i, names in ipairs(asks) do
    fns[i] = function() return batch.call("ecs", "DescribeServices", { cluster = "production", services = names }) end
  end
  local got = together(fns)
  local sent = received["ecs.DescribeServices"]
  local after = aws.stats()["ecs.DescribeServices"]
  T.eq(after.calls - before.calls, sent, "aws.stats counts what was sent")
  T.eq(after.items - (before.items or 0), 18 * 2 + 5, "items: every service asked for")
  T.ok(sent <= 4, "merged into few calls, got " .. sent)
  fresh(3, false)
  for i, names in ipairs(asks) do
    T.ok(got[i][1], "caller " .. i)
    local alone = aws.call("ecs", "DescribeServices", { cluster = "production", services = names })
    T.eq(#got[i][2].services, #alone.services, "caller " .. i .. " services")
    for k, s in ipairs(alone.services) do T.eq(got[i][2].services[k].serviceArn, s.serviceArn) end
    T.eq(got[i][2].failures, alone.failures, "caller " .. i .. " failures")
  end
  T.eq(received["ecs.DescribeServices"], 23, "unbatched: one call each")
end)

T.test("a merged call that fails for one caller: each caller gets its own answer or error", function()
  fresh(2, true)
  local tg = aws.call("elbv2", "DescribeTargetGroups", { Names = { "svc1-stable" } }).TargetGroups[1]
  local got = together {
    function() return batch.call("elbv2", "DescribeTargetGroups", { Names = { "svc1-stable" } }) end,
    function() return batch.call("elbv2", "DescribeTargetGroups", { Names = { "nope" } }) end,
    function() return batch.call("elbv2", "DescribeTargetGroups", { Names = { "svc2-canary", "svc1-stable" } }) end,
    function() return batch.call("ecs", "DescribeServices", { cluster = "nowhere", services = { "svc1" } }) end,
  }
  T.ok(got[1][1])
  T.eq(got[1][2].TargetGroups[1].TargetGroupArn, tg.TargetGroupArn)
  T.eq(got[2][1], false)
  T.ok(errors.is(got[2][2], "TargetGroupNotFound"), errors.describe(got[2][2]))
  T.ok(got[3][1])
  T.eq(got[3][2].TargetGroups[1].TargetGroupName, "svc2-canary", "the caller's own order")
  T.eq(got[3][2].TargetGroups[2].TargetGroupName, "svc1-stable")
  T.ok(errors.is(got[4][2], "ClusterNotFoundException"), errors.describe(got[4][2]))
end)

T.test("GetMetricData: every caller's queries in one call with the same window, split back", function()
  fresh(3, true)
  sched.sleep(600)
  local now = math.floor(sched.now() / 60) * 60
  local function q(i, id, metric, stat)
    local tg = aws.call("elbv2", "DescribeTargetGroups", { Names = { ("svc%d-stable"):format(i) } }).TargetGroups[1]
    return { Id = id, ReturnData = true, MetricStat = { Period = 60, Stat = stat, Metric = {
      Namespace = "AWS/ApplicationELB", MetricName = metric, Dimensions = {
        { Name = "TargetGroup", Value = tg.TargetGroupArn:match(":(targetgroup/.+)$") },
        { Name = "LoadBalancer", Value = tg.LoadBalancerArns[1]:match(":loadbalancer/(.+)$") } } } } }
  end
  local asks = {}
  for i = 1, 3 do
    asks[i] = { MetricDataQueries = { q(i, "req", "RequestCount", "Sum"), q(i, "lat", "TargetResponseTime", "p99") },
      StartTime = now - 480, EndTime = now - 120 }
  end
  asks[4] = { MetricDataQueries = { q(1, "req", "RequestCount", "Sum") }, StartTime = now - 300, EndTime = now - 120 }
  local fns = {}
  for i, a in ipairs(asks) do fns[i] = function() return batch.call("cloudwatch", "GetMetricData", a) end end
  local before = received["monitoring.GetMetricData"] or 0
  local got = together(fns)
  T.eq(received["monitoring.GetMetricData"] - before, 2, "one call per window")
  for i, a in ipairs(asks) do
    T.ok(got[i][1], "caller " .. i)
    local alone = aws.call("cloudwatch", "GetMetricData", a)
    T.eq(got[i][2].MetricDataResults, alone.MetricDataResults, "caller " .. i)
    T.ok(#alone.MetricDataResults[1].Values > 0, "there is data to compare")
  end
end)

T.test("ECSPLAY_BATCHING=0 and configure{ batching = false } send each request alone", function()
  fresh(1, nil)
  T.eq(batch.enabled(), true, "on by default")
  local sim = R.sim
  local creds = sim:credentials()
  aws.configure { region = sim.world.region, endpoint_url = "https://simulator.ecsplay.invalid",
    access_key = creds.access_key, secret_key = creds.secret_key,
    transport = function(req) return sim:transport(req) end, env = { ECSPLAY_BATCHING = "off" } }
  T.eq(batch.enabled(), false, "ECSPLAY_BATCHING=off")
  fresh(1, false)
  T.eq(batch.enabled(), false, "batching = false")
  local got = together {
    function() return batch.call("ecs", "DescribeServices", { cluster = "production", services = { "svc1" } }) end,
    function() return batch.call("ecs", "DescribeServices", { cluster = "production", services = { "svc1" } }) end,
  }
  T.ok(got[1][1] and got[2][1])
  T.eq(received["ecs.DescribeServices"], 2)
end)

---------------------------------------------------------------- batched answers = unbatched answers

-- What a caller got, comparable between two runs: its answer, or its error's kind, code and text.
local function outcome(r)
  if r[1] then return r[2] end
  local e = r[2]
  return { error = type(e) == "table" and { kind = e.kind, code = e.code, message = e.message } or tostring(e) }
end

local function stats_delta(before, op)
  local a, b = aws.stats()[op] or {}, before[op] or {}
  return { calls = (a.calls or 0) - (b.calls or 0), items = (a.items or 0) - (b.items or 0) }
end

--[[ asks = { { service, Operation, params }, ... }, asked at once batched and then unbatched,
     each time on a fresh world of two pairs after prepare() (the same both ways) and 10
     minutes of traffic. Every caller's outcome must be the same both ways; → the runs'
     { outcomes, stats = { ["service.Operation"] = { calls, items } } }, batched first. ]]
local function batched_vs_alone(asks, prepare)
  local runs = {}
  for _, batching in ipairs { true, false } do
    fresh(2, batching)
    if prepare then prepare() end
    sched.sleep(600)
    local before = aws.stats()
    local fns = {}
    for i, a in ipairs(asks) do fns[i] = function() return batch.call(a[1], a[2], a[3]) end end
    local got = together(fns)
    local run = { outcomes = {}, stats = {} }
    for i, r in ipairs(got) do run.outcomes[i] = outcome(r) end
    for _, a in ipairs(asks) do
      local op = a[1] .. "." .. a[2]
      run.stats[op] = stats_delta(before, op)
    end
    runs[#runs + 1] = run
  end
  for i in ipairs(asks) do
    T.eq(runs[1].outcomes[i], runs[2].outcomes[i], "caller " .. i .. " batched as alone")
  end
  for op, s in pairs(runs[1].stats) do T.eq(s.items, runs[2].stats[op].items, op .. " items") end
  return runs[1], runs[2]
end

-- A GetMetricData query of pair 1's stable target group's requests under this Id.
local function request_count(id, extra)
  local tg = aws.call("elbv2", "DescribeTargetGroups", { Names = { "svc1-stable" } }).TargetGroups[1]
  local q = { Id = id, MetricStat = { Period = 60, Stat = "Sum", Metric = {
    Namespace = "AWS/ApplicationELB", MetricName = "RequestCount", Dimensions = {
      { Name = "TargetGroup", Value = tg.TargetGroupArn:match(":(targetgroup/.+)$") },
      { Name = "LoadBalancer", Value = tg.LoadBalancerArns[1]:match(":loadbalancer/(.+)$") } } } } }
  for k, v in pairs(extra or {}) do q[k] = v end
  return q
end

-- GetMetricData of these queries over the last 8 minutes (whole minutes), with extra parameters.
local function metric_ask(queries, extra)
  local params = { MetricDataQueries = queries, StartTime = R.sim.world.now + 120, EndTime = R.sim.world.now + 600 }
  for k, v in pairs(extra or {}) do params[k] = v end
  return { "cloudwatch", "GetMetricData", params }
end

-- the asks are built once the world exists (the queries name its target groups)
local function asks_of(build)
  local asks = {}
  return asks, function() for i, a in ipairs(build()) do asks[i] = a end end
end

T.test("an invalid request fails only its caller, with its own error naming its own parameter", function()
  local long_id = "a" .. string.rep("b", 254) -- 255 characters: valid, and too long for a prefix
  local asks, prepare = asks_of(function() return {
    { "cloudwatch", "DescribeAlarms", { AlarmNames = { "api-5xx-high" } } },
    { "cloudwatch", "DescribeAlarms", { AlarmNames = { string.rep("a", 300) } } },
    metric_ask { request_count "m1" },
    metric_ask { request_count(long_id) },
    { "cloudwatch", "DescribeAlarms", { AlarmNames = { "" } } },
    { "cloudwatch", "DescribeAlarms", { AlarmNames = { "api-5xx-high", "nope" } } },
    metric_ask { request_count "m2" },
  } end)
  local b = batched_vs_alone(asks, prepare)
  T.ok(b.outcomes[1].MetricAlarms and #b.outcomes[1].MetricAlarms == 1, "the valid caller's alarm")
  T.eq(b.outcomes[2].error.code, "ParamValidation")
  T.ok(b.outcomes[2].error.message:find("`AlarmNames[1]`", 1, true), b.outcomes[2].error.message)
  T.ok(#b.outcomes[3].MetricDataResults[1].Values > 0, "m1 measured")
  T.eq(b.outcomes[4].MetricDataResults[1].Id, long_id, "a 255-character Id answered as its own call")
  T.ok(b.outcomes[5].error.message:find("`AlarmNames[1]`", 1, true), b.outcomes[5].error.message)
  -- the valid ones still merge: one DescribeAlarms; m1 and m2 in one call, the long Id alone
  T.eq(b.stats["cloudwatch.DescribeAlarms"].calls, 1)
  T.eq(b.stats["cloudwatch.GetMetricData"].calls, 2)
end)

T.test("GetMetricData requests CloudWatch refuses alone are refused batched too", function()
  local asks, prepare = asks_of(function() return {
    metric_ask { request_count "m1" },
    metric_ask { request_count "Upper" },
    metric_ask { request_count "1bad" },
    metric_ask { request_count "m3", request_count("m4", { ReturnData = false }) },
    metric_ask { request_count("m5", { ReturnData = false }) },
  } end)
  local b = batched_vs_alone(asks, prepare)
  T.ok(b.outcomes[1].MetricDataResults, "m1 answered")
  for _, i in ipairs { 2, 3, 5 } do T.eq(b.outcomes[i].error.code, "ValidationError", "caller " .. i) end
  T.eq(#b.outcomes[4].MetricDataResults, 1, "only the query that returns data")
  T.eq(b.stats["cloudwatch.GetMetricData"].items, 6)
end)

T.test("GetMetricData: MaxDatapoints and a page's worth of data answer as the caller's own call", function()
  local asks, prepare = asks_of(function() return {
    metric_ask({ request_count "m1" }, { MaxDatapoints = 5 }),
    metric_ask({ request_count "m2" }, { MaxDatapoints = 5 }),
    metric_ask({ request_count "m3" }, { MaxDatapoints = 5, ScanBy = "TimestampAscending" }),
  } end)
  local b, u = batched_vs_alone(asks, prepare)
  T.eq(b.outcomes[1].NextToken ~= nil, true, "a first page, as alone")
  T.ok(b.stats["cloudwatch.GetMetricData"].calls <= u.stats["cloudwatch.GetMetricData"].calls, "no more calls")
  -- the server's page (100,800 datapoints) shrunk to 10: a query has 6 points in the window, so
  -- the merged answer (24) pages, a one-query caller's own answer does not, a two-query one's does
  local limits = require "ecsplay.sim.limits"
  local page = limits.CLOUDWATCH.DATAPOINTS_PER_GET_METRIC_DATA
  limits.CLOUDWATCH.DATAPOINTS_PER_GET_METRIC_DATA = 10
  local ok, err = pcall(function()
    local asks2, prepare2 = asks_of(function() return {
      metric_ask { request_count "m1" },
      metric_ask { request_count "m2" },
      metric_ask { request_count "m3", request_count "m4" },
    } end)
    local b2 = batched_vs_alone(asks2, prepare2)
    T.eq(b2.outcomes[1].NextToken, nil, "6 points fit a page")
    T.ok(b2.outcomes[3].NextToken ~= nil, "12 points do not")
  end)
  limits.CLOUDWATCH.DATAPOINTS_PER_GET_METRIC_DATA = page
  if not ok then error(err, 0) end
end)

T.test("DescribeServices: a service asked twice, an old-format ARN, another cluster's ARN", function()
  local arn = "arn:aws:ecs:us-east-1:123456789012:service/"
  local asks = {
    { "ecs", "DescribeServices", { cluster = "production", services = { "svc1" } } },
    { "ecs", "DescribeServices", { cluster = "production", services = { "svc2", "svc2" } } },
    { "ecs", "DescribeServices", { cluster = "production", services = { arn .. "svc1-canary" } } },
    { "ecs", "DescribeServices", { cluster = "production", services = { arn .. "staging/svc1" } } },
    { "ecs", "DescribeServices", { cluster = "production", services = { "nope", "nope", arn .. "production/nope" } } },
    { "ecs", "DescribeServices", { cluster = "production", services = { arn .. "production/svc2-canary", "svc1" } } },
    -- this cluster's, another account's: refused as ECS refuses it (merged with the others,
    -- the merged call fails and each caller is asked again alone)
    { "ecs", "DescribeServices", { cluster = "production",
      services = { "svc1", "arn:aws:ecs:us-east-1:999999999999:service/production/svc2" } } },
    -- a missing service by old-format ARN, then by name: each its own failure's ARN
    { "ecs", "DescribeServices", { cluster = "production", services = { arn .. "gone" } } },
    { "ecs", "DescribeServices", { cluster = "production", services = { "gone" } } },
    -- no name at all: whatever the service answers (the simulator: a 500), its caller's only
    { "ecs", "DescribeServices", { cluster = "production", services = { "" } } },
  }
  local function prepare()
    aws.call("ecs", "CreateCluster", { clusterName = "staging" })
    aws.call("ecs", "CreateService", { cluster = "staging", serviceName = "svc1", taskDefinition = "api:1",
      desiredCount = 0, launchType = "FARGATE", networkConfiguration = { awsvpcConfiguration = {
        subnets = { "subnet-0sima" } } } })
  end
  local b = batched_vs_alone(asks, prepare)
  T.eq(#b.outcomes[2].services, 2, "svc2 twice, as alone")
  T.eq(#b.outcomes[3].services, 1, "the old-format ARN's service")
  T.eq(b.outcomes[4].error and b.outcomes[4].error.code, "InvalidParameterException",
    "the other cluster's ARN refused, as ECS refuses it, to its caller only")
  T.eq(b.outcomes[7].error and b.outcomes[7].error.code, "InvalidParameterException",
    "the other account's ARN refused to its caller only")
  T.eq(b.outcomes[7].error.message, "Identifier is for 999999999999. Your accountId is 123456789012")
  T.eq(#b.outcomes[1].services, 1, "the callers merged with it still get their own answers")
  T.eq(#b.outcomes[6].services, 2)
  T.eq(#b.outcomes[5].failures, 3, "and their own failures")
  T.eq(b.stats["ecs.DescribeServices"].items, 15)
  -- names and ARNs of the request's cluster still merge: one call for callers 1 and 6
  fresh(2, true)
  local got = together {
    function() return batch.call("ecs", "DescribeServices", asks[1][3]) end,
    function() return batch.call("ecs", "DescribeServices", asks[6][3]) end,
  }
  T.ok(got[1][1] and got[2][1])
  T.eq(#got[2][2].services, 2)
  T.eq(received["ecs.DescribeServices"], 1, "merged")
end)

T.test("aws.stats items: a request that goes alone counts what it asks for", function()
  local services = {}
  for i = 1, 11 do services[i] = i % 2 == 0 and ("svc%d"):format(i % 2 + 1) .. "-canary" or "svc" .. i end
  local asks, prepare = asks_of(function() return {
    { "ecs", "DescribeServices", { cluster = "production", services = services } },
    metric_ask { request_count("a", { ReturnData = false }), request_count("b", { ReturnData = false }),
      { Id = "e", Expression = "a+b" } },
  } end)
  local b = batched_vs_alone(asks, prepare)
  T.eq(b.stats["ecs.DescribeServices"].items, 11)
  T.eq(b.stats["cloudwatch.GetMetricData"].items, 3)
end)
