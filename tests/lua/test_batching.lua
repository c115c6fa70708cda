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
