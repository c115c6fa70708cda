-- Polls on a shared grid (sched.next_tick): rollouts started seconds apart measure their gates
-- on the multiples of `interval` and poll their services on the multiples of `poll`, so the
-- shared batcher (aws/batch.lua) merges their reads; a gate still judges only periods of its
-- own step; a readiness poll backs off on a throttle on the grid of its backoff.
local T = require "harness"
local R = require "rollout_sim"
local W = require "fleet_world"
local aws = require "ecsplay.aws"
local gate = require "ecsplay.gate"
local sched = require "ecsplay.sched"
local ecs = require "ecsplay.ecs"
local ecs_util = require "ecsplay.rollout.ecs_util"
local ecsplay = require "ecsplay"

local received, times -- "service.Operation" → requests the simulator received, → their instants

--[[ A fresh world of n pairs, the client batching or not, recording what reaches the
     simulator; answer(op, req) may answer a request instead of the simulator. ]]
local function fresh(n, batching, answer)
  local sim = R.fresh(W.scenario(n))
  local creds = sim:credentials()
  received, times = {}, {}
  aws.configure {
    region = sim.world.region, endpoint_url = "https://simulator.ecsplay.invalid",
    access_key = creds.access_key, secret_key = creds.secret_key, batching = batching,
    rate_limits = false, max_attempts = 1,
    transport = function(req)
      local op = W.operation_of(req)
      received[op] = (received[op] or 0) + 1
      times[op] = times[op] or {}
      table.insert(times[op], sched.now())
      return answer and answer(op, req) or sim:transport(req)
    end,
  }
  return sim
end

-- n canaries, the i-th started 7 * (i - 1) seconds after the first (not on any grid).
local function staggered(n, batching, opts)
  fresh(n, batching)
  local t0 = sched.now()
  local list = {}
  for i = 1, n do list[i] = i end
  local reports = ecsplay.map(list, function(i)
    sched.sleep(t0 + 7 * (i - 1) - sched.now())
    return W.canary(i, "api:v2", opts and opts(i))
  end)
  return reports, received
end

-- Every round of every step of every report: fn(round, step, report).
local function each_round(reports, fn)
  for _, r in ipairs(reports) do
    for _, st in ipairs(r.steps or {}) do
      for _, round in ipairs(st.measurements or {}) do fn(round, st, r) end
    end
  end
end

T.test("next_tick: the first multiple of the period after t, on an anchored grid too", function()
  T.eq(sched.next_tick(60, 1000), 1020)
  T.eq(sched.next_tick(60, 1020), 1080, "strictly after: on the grid, the next instant")
  T.eq(sched.next_tick(15, 1021.5), 1035)
  T.eq(sched.next_tick(60, 1000, 30), 1050, "anchor 30: ..., 990, 1050, ...")
  T.eq(sched.next_tick(60, 1010, 1010), 1070)
  T.eq(sched.next_tick(45, -1), 0)
end)

T.test("rollouts started seconds apart share their GetMetricData and DescribeServices calls", function()
  local n = 4
  -- a 3-minute bake: rounds before the verdict's time see new periods (not only the last one)
  local function three_minutes() return { bake = "3m" } end
  local plain_reports, plain = staggered(n, false, three_minutes)
  local batched_reports, batched = staggered(n, true, three_minutes)
  for i = 1, n do
    T.eq(batched_reports[i].status, "succeeded", "canary " .. i)
    T.eq(plain_reports[i].status, "succeeded", "canary " .. i .. " unbatched")
    T.eq(batched_reports[i].steps, plain_reports[i].steps, "canary " .. i .. ": the same rounds both ways")
  end
  local gmd, ds = "monitoring.GetMetricData", "ecs.DescribeServices"
  -- every rollout measures at the same instants (minutes): one call a round for all four
  T.ok(batched[gmd] * 3 <= plain[gmd], string.format("GetMetricData: %d batched, %d alone", batched[gmd], plain[gmd]))
  T.ok(batched[ds] * 2 <= plain[ds], string.format("DescribeServices: %d batched, %d alone", batched[ds], plain[ds]))
  -- the readiness polls fall on the 15 s grid: all but each rollout's first look (its check)
  local off = 0
  for _, t in ipairs(times[ds]) do if t % 15 ~= 0 then off = off + 1 end end
  T.ok(off <= n, string.format("%d DescribeServices off the 15 s grid", off))
end)

T.test("rounds land on the multiples of the interval; a gate judges only its own step's periods", function()
  local reports = staggered(3, true, function()
    return { steps = { 25, 50, 100 }, bake = "3m", gates = {
      gate.alb_5xx_rate { target_group = "svc1-canary", below = 1.0 },
      gate.alb_latency { target_group = "svc1-canary", p = 99, below_ms = 300, settle = "30s" },
    } }
  end)
  local rounds = 0
  each_round(reports, function(round, st)
    rounds = rounds + 1
    for _, m in ipairs(round) do
      T.eq(m.time % 60, 0, "a round at " .. m.time)
      T.ok(m.window.from >= st.started, string.format("%s judged %d, the step began at %d", m.gate,
        m.window.from, st.started))
      if m.gate:find("p99", 1, true) then
        T.ok(m.window.from >= st.started + 30, "settle: " .. m.window.from .. " vs " .. st.started)
      end
    end
  end)
  T.ok(rounds >= 3 * 3 * 2, "every step of every canary measured, got " .. rounds)
  for _, r in ipairs(reports) do T.eq(r.status, "succeeded") end
end)

T.test("a delay that is not whole minutes: the rounds fall when its periods become visible", function()
  local reports = staggered(2, true, function(i)
    return { gates = { gate.alb_5xx_rate { target_group = ("svc%d-canary"):format(i), below = 1.0,
      delay = "150s" } } }
  end)
  local rounds = 0
  each_round(reports, function(round)
    rounds = rounds + 1
    T.eq(round[1].time % 60, 30, "period end (a minute) + 150 s")
    T.eq(round[1].time - round[1].window.to, 150, "judged the moment it became visible")
  end)
  T.ok(rounds >= 4, "rounds: " .. rounds)
end)

-- A ThrottlingException answer (the request is not passed to the simulator).
local function throttled()
  return { status = 400, headers = { ["content-type"] = "application/x-amz-json-1.1" },
    body = '{"__type":"ThrottlingException","message":"Rate exceeded"}' }
end

T.test("wait_ready: polls on the 15 s grid, backs off on a throttle on its own grid, then is ready", function()
  local throttle_until
  fresh(2, true, function(op)
    if op == "ecs.DescribeServices" and throttle_until and sched.now() < throttle_until then return throttled() end
  end)
  local tg = {}
  for i = 1, 2 do
    tg[i] = require("ecsplay.elbv2").describe_target_groups({ Names = { ("svc%d-canary"):format(i) } })
      .TargetGroups[1].TargetGroupArn
  end
  sched.sleep(sched.next_tick(60) - sched.now() + 4) -- a minute's 4th second
  local t0 = sched.now()
  local td = ecs.describe_services({ cluster = "production", services = { "svc1" } }).services[1].taskDefinition
  throttle_until = t0 + 60
  times["ecs.DescribeServices"] = {}
  local tasks = {}
  for i = 1, 2 do
    tasks[i] = sched.spawn(function()
      sched.sleep(3 * i)
      ecs.update_service { cluster = "production", service = ("svc%d-canary"):format(i), desiredCount = 1 }
      return ecs_util.wait_ready("production", ("svc%d-canary"):format(i), td, 1, { tg[i] }, 600)
    end)
  end
  for i = 1, 2 do
    local ok, svc = tasks[i]:result()
    T.ok(ok, tostring(svc))
    T.eq(svc.serviceName, ("svc%d-canary"):format(i))
  end
  local polls = times["ecs.DescribeServices"]
  T.ok(#polls >= 3, "polls: " .. #polls)
  -- the first 15 s tick (t0 + 11, :15) is throttled: the backoff (30 s) waits for a multiple
  -- of 30 more than 15 s away (t0 + 56, :00), throttled again: 45 s, a multiple of 45 more
  -- than 22.5 s and at most 67.5 s away
  T.eq(polls[1], t0 + 11, "the first poll on the 15 s grid, not right after the update")
  T.eq(polls[2], t0 + 56, "a backoff of 30 s on the multiples of 30")
  T.eq(polls[3] % 45, 0, "a backoff of 45 s on the multiples of 45: " .. polls[3])
  T.ok(polls[3] - polls[2] > 22.5 and polls[3] - polls[2] <= 67.5, "waited " .. (polls[3] - polls[2]))
  for k, t in ipairs(polls) do
    T.eq(t % 15, 0, "a poll at " .. t)
    if k > 3 then T.eq(t - polls[k - 1], 15, "then every 15 s") end
  end
  -- both services in one call at each instant
  for k = 2, #polls do T.ok(polls[k] > polls[k - 1], "one call at " .. polls[k]) end
end)

