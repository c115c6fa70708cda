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

-- The message ratelimit.settings raises for ECSPLAY_RATE_LIMITS=text / configure{rate_limits=conf}.
local function refusal(text, conf)
  local ok, e = pcall(ratelimit.settings, { rate_limits = conf }, function(k)
    return k == "ECSPLAY_RATE_LIMITS" and text or nil end)
  T.ok(not ok, "refused: " .. tostring(text or conf))
  return e
end

T.test("an operation override is checked against the service's model, with a did-you-mean", function()
  T.eq(refusal("ecs.ListClusterz=1"), 'ECSPLAY_RATE_LIMITS: ecs has no operation "ListClusterz"; '
    .. 'did you mean "ecs.ListClusters"?')
  T.eq(refusal(nil, { ["ecs.DescribeServicez"] = { rate = 1 } }), 'configure{rate_limits=}: ecs has no '
    .. 'operation "DescribeServicez"; did you mean "ecs.DescribeServices"?')
  T.eq(refusal("ecs.Bogus=5"), 'ECSPLAY_RATE_LIMITS: ecs has no operation "Bogus" (expected one of ecs\'s '
    .. 'classes, or an operation as its API spells it, e.g. "ecs.DescribeServices")')
  T.eq(refusal("codedeploy.CreateDeploymnt=1"), 'ECSPLAY_RATE_LIMITS: codedeploy has no operation '
    .. '"CreateDeploymnt"; did you mean "codedeploy.CreateDeployment"?')
  T.eq(refusal("ecs.describe_services=3"), 'ECSPLAY_RATE_LIMITS: ecs has no operation class '
    .. '"describe_services"; did you mean "ecs.DescribeServices"?')
  T.eq(refusal("ecs.Service_read=3"), 'ECSPLAY_RATE_LIMITS: ecs has no operation "Service_read"; '
    .. 'did you mean "ecs.service_read"?')
  -- real operations, with or without a default bucket, are taken
  local env = { ECSPLAY_RATE_LIMITS = "ecs.ListClusters=1,codedeploy.CreateDeployment=2/4,elbv2.ModifyRule=3" }
  local l = ratelimit.new(ratelimit.settings({}, function(k) return env[k] end))
  T.eq({ l:limit_for("ecs", "ListClusters") }, { "ecs.ListClusters", { rate = 1, burst = 1 } })
  T.eq({ l:limit_for("codedeploy", "CreateDeployment") },
    { "codedeploy.CreateDeployment", { rate = 2, burst = 4 } })
  T.eq({ l:limit_for("elbv2", "ModifyRule") }, { "elbv2.ModifyRule", { rate = 3, burst = 3 } })
  -- from the command line: InvalidConfig, exit 2, one line
  local out, rc = T.sh("ECSPLAY_RATE_LIMITS=ecs.ListClusterz=1 " .. T.bin
    .. " -e 'require(\"ecsplay.aws\").configure{}'")
  T.eq(rc, 2, out)
  T.eq(out, 'ecsplay: (command line):1: InvalidConfig: ECSPLAY_RATE_LIMITS: ecs has no operation '
    .. '"ListClusterz"; did you mean "ecs.ListClusters"?\n')
end)

T.test("a bad rate or burst says what was expected and shows the value as given", function()
  local RATE = "rate must be a number of requests a second above 0 (at most 1000000), got "
  local at = "ECSPLAY_RATE_LIMITS ecs.service_read: "
  T.eq(refusal("ecs.service_read=-1"), at .. RATE .. "-1", "the format is right: the value is wrong")
  T.eq(refusal("ecs.service_read=nan"), at .. RATE .. '"nan"')
  T.eq(refusal("ecs.service_read=1.2.3"), at .. RATE .. '"1.2.3"')
  T.eq(refusal("ecs.service_read=0x10"), at .. RATE .. '"0x10"', "decimal only")
  T.eq(refusal("ecs.service_read=2e6"), at .. RATE .. "2000000")
  T.eq(refusal("ecs.service_read=5/0.5"), at .. "burst must be a number of tokens from 1 to 1000000, got 0.5")
  T.eq(refusal("ecs.service_read=5/x"), at .. 'burst must be a number of tokens from 1 to 1000000, got "x"')
  T.eq(refusal("ecs.service_read=1/2/3"), 'ECSPLAY_RATE_LIMITS: "ecs.service_read=1/2/3" is not '
    .. "service.class=rate[/burst] (e.g. ecs.service_read=10/40)")
  T.eq(refusal("ecs.service_read"), 'ECSPLAY_RATE_LIMITS: "ecs.service_read" is not '
    .. "service.class=rate[/burst] (e.g. ecs.service_read=10/40)")
  local conf = "configure{rate_limits=} ecs.service_read: "
  T.eq(refusal(nil, { ["ecs.service_read"] = { rate = "10" } }), conf .. RATE .. 'string "10"')
  T.eq(refusal(nil, { ["ecs.service_read"] = { rate = 0 / 0 } }), conf .. RATE .. "nan")
  T.eq(refusal(nil, { ["ecs.service_read"] = { rate = 5, burst = true } }), conf
    .. "burst must be a number of tokens from 1 to 1000000, got boolean true")
  T.eq(refusal(nil, { ["ecs.service_read"] = 5 }), conf
    .. "expected { rate = per second, burst = tokens } or false, got integer 5")
  T.eq(refusal(nil, "fast"), 'configure{rate_limits=}: expected false or a table { ["ecs.service_read"] = '
    .. '{ rate =, burst = } }, got string "fast"')
  -- a decimal number in any notation is a number
  local s = ratelimit.settings({}, function(k)
    return k == "ECSPLAY_RATE_LIMITS" and "ecs.service_read=1e3/2.5e3" or nil end)
  T.eq(s.limits["ecs.service_read"], { rate = 1000.0, burst = 2500.0 })
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

--------------------------------------------------------------------------- the limiters' clock
--[[ Over `sim serve` sched.now() starts on the machine's clock and, from the first answer,
     follows the served one, which can be days behind or ahead. A limiter's clock that jumps
     re-anchors: no negative elapsed time, no burst granted or withheld. ]]

-- Sequential callers, each sleeping until its token (the injected clock moves by the wait).
-- jump(i) → seconds the clock jumps before call i (and the clock's new name). → seconds waited
local function sequential(bucket, clock, n, jump)
  local waited = 0
  for i = 1, n do
    local by, name = jump(i)
    if by then clock.t, clock.name = clock.t + by, name or clock.name end
    local due = bucket:reserve()
    clock.t, waited = clock.t + due, waited + due
  end
  return waited
end

local function injected(t)
  local clock = { t = t or 2e9, name = "machine" }
  return clock, function() return clock.t, clock.name end
end

local DAYS = 86400

T.test("a static limiter whose clock jumps back by days still refills at its rate", function()
  local clock, read = injected()
  local l = ratelimit.new({ enabled = true, limits = { ["ecs.service_read"] = { rate = 2, burst = 1 } } }, read)
  local bucket = l:entry("ecs", "DescribeServices")[1]
  -- 16 calls at 2 a second, burst 1: the clock goes 11 days back after the first (no new
  -- name: an unnamed jump, as a wall clock stepped back)
  local waited = sequential(bucket, clock, 16, function(i) return i == 2 and -11 * DAYS or nil end)
  T.eq(waited, 15 * 0.5, "each call after the first waits one token interval, not one more than the last")
  -- a jump while a caller sleeps for its token: the limiter cannot tell how long the jump
  -- took, so the half second slept across it counts as none (the next call waits one
  -- interval more, once); then the rate again
  local dues = {}
  sequential(setmetatable({ reserve = function(b)
    local due = bucket.reserve(b)
    dues[#dues + 1] = due
    return due
  end }, { __index = bucket }), clock, 4, function(i) return i == 1 and -3 * DAYS or nil end)
  T.eq(dues, { 1.0, 0.5, 0.5, 0.5 })
end)

T.test("a limiter whose clock switches (sim serve's first answer) keeps its tokens and its debt", function()
  for _, by in ipairs { 3 * DAYS, -3 * DAYS } do
    local clock, read = injected()
    local l = ratelimit.new({ enabled = true,
      limits = { ["ecs.service_read"] = { rate = 2, burst = 10 } } }, read)
    local bucket = l:entry("ecs", "DescribeServices")[1]
    -- 15 callers at once: 10 from the burst, 5 reserved ahead (the last one due 2.5 s later)
    for _ = 1, 15 do bucket:reserve() end
    clock.t, clock.name = clock.t + by, "http://127.0.0.1:5271"
    T.eq(bucket:reserve(), 3.0, "the next token after the 5 reserved ones (switch by " .. by
      .. " s): no burst granted")
    clock.t = clock.t + 3.0
    T.eq(bucket:reserve(), 0.5, "then the bucket's rate")
  end
  -- a bucket full at the switch stays full: nothing withheld
  local clock, read = injected()
  local bucket = ratelimit.bucket(10, 2, ratelimit.steady(read), true)
  bucket:reserve()
  clock.t = clock.t + 1
  bucket:refill()
  clock.t, clock.name = clock.t - 5 * DAYS, "http://127.0.0.1:5271"
  for i = 1, 10 do T.eq(bucket:reserve(), 0, "token " .. i .. " of the burst") end
end)

T.test("adaptive mode's limiter whose clock jumps back by days measures, recovers and refills", function()
  local clock, read = injected(1000)
  local a = ratelimit.adaptive(read)
  for _ = 1, 120 do clock.t = clock.t + 0.025 a:on_response(false) end
  local after_throttle = a:on_response(true)
  local measured = a:measured_rate()
  T.ok(a.enabled and after_throttle > 10, "throttled at about 40 a second: " .. after_throttle)
  clock.t, clock.name = clock.t - 11 * DAYS, "http://127.0.0.1:5271"
  -- 40 answers a second for 4 s, each after its token: the send rate is measured again and
  -- the fill rate grows back along the cubic, not stuck at the 0.5 a second floor
  local waited = 0
  for _ = 1, 160 do
    local due = a.bucket:reserve()
    clock.t = clock.t + math.max(due, 0.025)
    waited = waited + due
    a:on_response(false)
  end
  T.ok(a:fill_rate() > after_throttle, string.format("fill rate %.1f > %.1f after the throttle",
    a:fill_rate(), after_throttle))
  T.ok(math.abs(a:measured_rate() - measured) > 0 and a:measured_rate() > 10,
    "the send rate is measured after the jump: " .. a:measured_rate())
  T.ok(waited < 160 / after_throttle, "waits at the fill rate, not growing: " .. waited)
end)

--[[ The same over a real `sim serve --lockstep` (simulated time moves only while the client
     waits) whose clock is years behind the machine's (tests/scenarios/served_clock_behind.lua):
     tests/scenarios/rate_client.lua makes 16 sequential DescribeServices. ]]
local J = dofile "tests/scenarios/journal_lib.lua"
local json = require "ecsplay.json"

local function served_run(env, fault)
  return J.with_server(function(dir, srv)
    if fault then J.fault(srv, fault) end
    env.ECSPLAY_SIM_CLOCK = "follow"
    env.AWS_CONFIG_FILE, env.AWS_SHARED_CREDENTIALS_FILE = "/dev/null", "/dev/null"
    local rc, out = J.ecsplay(dir, "client", srv, { "tests/scenarios/rate_client.lua", "n=16" }, env)
    T.eq(rc, 0, out)
    local r = json.decode(out:match("({[^\n]*})%s*$") or "")
    T.ok(type(r) == "table", "the client's JSON line:\n" .. out)
    T.ok(r.followed and r.times[1] < r.machine - 365 * DAYS, "the client followed a clock years behind")
    return r
  end, "tests/scenarios/served_clock_behind.lua")
end

T.test("over sim serve: 16 calls at a static limit of 2 a second take 7.5 s of the server's clock", function()
  local r = served_run { ECSPLAY_RATE_LIMITS = "ecs.service_read=2/1" }
  T.eq(#r.failures, 0)
  T.eq({ r.limits.calls, r.limits.waits, r.limits.waited }, { 16, 15, 7.5 },
    "15 waits of half a second (not 0.5, 1, 1.5, ... s)")
  T.eq(r.times[16] - r.times[1], 7.5, "on the served clock, from the first answer to the last")
  for i = 2, 16 do T.ok(r.times[i] - r.times[i - 1] <= 0.5 + 1e-6, "gap before call " .. i) end
end)

T.test("over sim serve: adaptive mode throttled at 2 a second settles near that rate", function()
  local r = served_run({ AWS_RETRY_MODE = "adaptive", AWS_MAX_ATTEMPTS = "10", ECSPLAY_RATE_LIMITS = "off" },
    { service = "ecs", operation = "DescribeServices", rate = 2, burst = 2 })
  T.eq(#r.failures, 0, "every call got through")
  T.ok(r.throttles > 0, "throttled, so the limiter is on")
  -- at the server's 2 a second, 16 calls need 7 s past the burst; a limiter that never
  -- refilled took minutes (its wait grew by a token interval each call)
  local took = r.times[16] - r.times[1]
  T.ok(took >= 7 and took < 20, "served seconds from the first answer to the last: " .. took)
end)
