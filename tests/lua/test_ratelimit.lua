-- Client-side rate limits (aws/ratelimit.lua) against the simulator's rate faults
-- (sim/faults.lua): the limiter holds an account limit, counted from the simulator's side.
local T = require "harness"
local ecsplay = require "ecsplay"
local R = require "rollout_sim"
local aws = require "ecsplay.aws"
local errors = require "ecsplay.errors"
local ratelimit = require "ecsplay.aws.ratelimit"
local scenario = require "ecsplay.sim.scenario"
local rollout = require "ecsplay.rollout"

-- A fresh simulator whose transport records, per request the simulator answered, the world
-- time and the operation (X-Amz-Target's or the query's Action) and status.
local function world(faults, conf)
  local sim = R.fresh(scenario.check({ faults = faults }, "rate test"))
  local seen = {}
  local creds = sim:credentials()
  aws.configure(setmetatable({ region = "us-east-1", endpoint_url = "https://simulator.ecsplay.invalid",
    access_key = creds.access_key, secret_key = creds.secret_key,
    transport = function(req)
      local resp, err, kind = sim:transport(req)
      local op = (req.headers["X-Amz-Target"] or ""):match("%.(%w+)$") or (req.body or ""):match("Action=(%w+)")
      seen[#seen + 1] = { t = sim.world.now, op = op, status = resp and resp.status }
      return resp, err, kind
    end }, { __index = conf or {} }))
  return sim, seen
end

local function describe_many(n, each)
  local list = {}
  for i = 1, n do list[i] = i end
  ecsplay.map(list, function()
    for _ = 1, each do aws.call("ecs", "DescribeServices", { cluster = "production", services = { "api" } }) end
  end)
end

-- The most requests of `op` the simulator answered with 200 in any window of `width` seconds.
local function busiest(seen, op, width)
  local times = {}
  for _, r in ipairs(seen) do if r.op == op and r.status == 200 then times[#times + 1] = r.t end end
  table.sort(times)
  local most, j = 0, 1
  for i = 1, #times do
    while times[i] - times[j] >= width do j = j + 1 end
    most = math.max(most, i - j + 1)
  end
  return most, #times
end

T.test("the limiter holds a simulated account limit: no throttle, at most burst + rate a second", function()
  local sim, seen = world({ { service = "ecs", operation = "DescribeServices", rate = 20, burst = 40 } },
    { rate_limits = { ["ecs.service_read"] = { rate = 20, burst = 40 } } })
  describe_many(100, 4)
  local fault = sim.faults:list()[1]
  T.eq(fault.seen, 400, "every call reached the simulator once")
  T.eq(fault.hits, 0, "none throttled")
  local most, total = busiest(seen, "DescribeServices", 1)
  T.eq(total, 400)
  T.ok(most <= 40 + 20, "busiest second: " .. most)
  most = busiest(seen, "DescribeServices", 10)
  T.ok(most <= 40 + 20 * 10, "busiest ten seconds: " .. most)
  local st = aws.limits():stats()["ecs.service_read"]
  T.ok(st.waits >= 300, "the limiter made callers wait: " .. st.waits)
end)

T.test("without the limiter the same load is throttled (the fault holds the limit)", function()
  local sim = world({ { service = "ecs", operation = "DescribeServices", rate = 20, burst = 40 } },
    { rate_limits = false, max_attempts = 1 })
  local failures = 0
  local list = {}
  for i = 1, 100 do list[i] = i end
  ecsplay.map(list, function()
    local ok, e = aws.pcall("ecs", "DescribeServices", { cluster = "production", services = { "api" } })
    if not ok then
      T.ok(errors.is(e, "ThrottlingException"), errors.describe(e))
      failures = failures + 1
    end
  end)
  T.eq(failures, 60, "100 at once against a 40-token bucket")
  T.eq(sim.faults:list()[1].hits, 60)
end)

T.test("each service's own throttling error; per minute; region scope", function()
  local sim = world({
    { service = "elbv2", operation = "DescribeTargetGroups", rate = 1, per = "minute", burst = 1 },
    { service = "ecs", operation = "ListClusters", rate = 1, region = "us-east-1", burst = 1 },
  }, { rate_limits = false, max_attempts = 1 })
  aws.call("elbv2", "DescribeTargetGroups", {})
  local e = T.raises(function() aws.call("elbv2", "DescribeTargetGroups", {}) end)
  T.ok(errors.is(e, "Throttling") and e.status == 400, errors.describe(e))
  ecsplay.sleep(60)
  aws.call("elbv2", "DescribeTargetGroups", {}) -- refilled after a minute
  aws.call("ecs", "ListClusters", {})
  e = T.raises(function() aws.call("ecs", "ListClusters", {}) end)
  T.ok(errors.is(e, "ThrottlingException"), errors.describe(e))
  T.eq(sim.faults:list()[2].hits, 1)
end)

T.test("a rate fault is range-checked", function()
  for _, case in ipairs {
    { { rate = 0 }, "rate" }, { { rate = -1 }, "rate" }, { { rate = 2e6 }, "rate" },
    { { rate = 5, per = "hour" }, "per" }, { { burst = 5 }, "burst" }, { { rate = 5, burst = 0 }, "burst" },
    { { rate = 5, drop = true }, "rate fault" }, { { rate = 5, region = "mars" }, "region" },
    { { rate = 5, region = "eu-west-1" }, "not one of the scenario's regions" },
  } do
    local f = case[1]
    f.service = "ecs"
    local e = T.raises(function() scenario.check({ faults = { f } }, "s") end)
    T.ok(errors.is(e, "scenario") and errors.describe(e):find(case[2], 1, true), errors.describe(e))
  end
end)

T.test("defaults from AWS's documents, overrides, and bad settings", function()
  local l = ratelimit.new(ratelimit.settings({}, function() return nil end))
  local key, lim = l:limit_for("ecs", "DescribeServices")
  T.eq({ key, lim }, { "ecs.service_read", { burst = 100, rate = 20 } })
  T.eq({ l:limit_for("ecs", "UpdateService") }, { "ecs.service_modify", { burst = 50, rate = 5 } })
  T.eq({ l:limit_for("elbv2", "DescribeTargetHealth") }, { "elbv2.describe", { burst = 40, rate = 10 } })
  T.eq({ l:limit_for("cloudwatch", "GetMetricData") }, { "cloudwatch.GetMetricData", { burst = 500, rate = 500 } })
  T.eq(l:limit_for("codedeploy", "CreateDeployment"), nil, "no documented CodeDeploy rate")
  local env = { ECSPLAY_RATE_LIMITS = "ecs.service_read=10/30,cloudwatch.GetMetricData=50" }
  l = ratelimit.new(ratelimit.settings({}, function(k) return env[k] end))
  T.eq(select(2, l:limit_for("ecs", "ListServices")), { rate = 10, burst = 30 })
  T.eq(select(2, l:limit_for("cloudwatch", "GetMetricData")), { rate = 50, burst = 50 })
  T.eq(ratelimit.settings({}, function() return "off" end).enabled, false)
  for _, bad in ipairs {
    { rate_limits = { ["ecs.service_red"] = { rate = 1 } } }, { rate_limits = { ecs = { rate = 1 } } },
    { rate_limits = { ["ecs.service_read"] = { rate = 0 } } }, { rate_limits = "fast" },
    { rate_limits = { ["ecs.service_read"] = { rate = 5, brust = 3 } } },
  } do
    local e = T.raises(function() aws.configure(bad) end)
    T.ok(errors.is(e, "config") and e.field == "rate_limits", errors.describe(e))
  end
  aws.configure {}
end)

T.test("200 rolling rollouts at once finish with no failed step under the account's limits", function()
  -- 500 finish the same way in about 11 s here (too slow for a test): see docs/simulator.md
  local N = 200
  R.fresh(scenario.check({
    faults = {
      { service = "ecs", operation = "DescribeServices", rate = 20, burst = 100 },
      { service = "ecs", operation = "UpdateService", rate = 5, burst = 50 },
      { service = "ecs", operation = "RegisterTaskDefinition", rate = 1, burst = 20 },
    },
    setup = function(a)
      local net = { awsvpcConfiguration = { subnets = { "subnet-0sima" }, securityGroups = { "sg-0sim" } } }
      for i = 1, N do
        a.ecs.CreateService { cluster = "production", taskDefinition = "api:1", desiredCount = 1,
          serviceName = "svc" .. i, launchType = "FARGATE", networkConfiguration = net }
      end
    end }, "fleet"))
  local list = {}
  for i = 1, N do list[i] = i end
  local reports = ecsplay.map(list, function(i)
    return rollout.rolling { cluster = "production", service = "svc" .. i, image = "api:v2", journal = false }
  end)
  local failed = 0
  for _, r in ipairs(reports) do
    if r.status ~= "succeeded" then failed = failed + 1 end
    for _, s in ipairs(r.steps or {}) do if s.status == "failed" then failed = failed + 1 end end
  end
  T.eq(failed, 0)
  for _, f in ipairs(R.sim.faults:list()) do T.eq(f.hits, 0, f.operation .. " never throttled") end
  T.eq(R.service("svc" .. N).td:match("^api:"), "api:", "the last one runs a new revision")
end)
