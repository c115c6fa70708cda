-- The simulated ELBv2 and CloudWatch at fleet size: what they keep so that a tick, a minute of
-- ALB metrics or a look-up costs what changed, not the account's size (the target groups the
-- health-check tick visits, the routed target groups the ALB metrics read, the name indexes),
-- and that each of those is brought up to date by every change it depends on.
local T = require "harness"
local World = require "ecsplay.sim.world"
local elbv2 = require "ecsplay.sim.elbv2"
local cloudwatch = require "ecsplay.sim.cloudwatch"
local elb_state = require "ecsplay.sim.elbv2.state"

local START = 1795687200 -- a multiple of 60
local NS = "AWS/ApplicationELB"

-- A fake ECS whose tasks are healthy and settled unless `sick` names them.
local function fake_ecs(sick)
  return { name = "ecs", init = function() return {} end,
    task_health = function(_, arn) return sick[arn] and "unhealthy" or "healthy" end,
    task_settled = function(_, arn) return not sick[arn] end,
    task_image = function() return "api:v1" end,
    image_first_start = function() return START end }
end

local function e(w, op, input) return elbv2.ops[op](w, input or {}) end

-- n listeners on load balancer "web" (ports 8001...), each forwarding to a pair of groups
-- <i>-a (100) and <i>-b (0), each with one task's target; every listener gets 100 requests/s.
local function fleet(n, sick)
  local per_port = {}
  for i = 1, n do per_port[8000 + i] = 100 end
  local w = World.new { start = START, seed = 11, traffic = { rps = 100, listeners = per_port },
    scenario = { metrics = { delay = 0 } } }
  w:add_service(fake_ecs(sick or {}))
  w:add_service(elbv2)
  w:add_service(cloudwatch)
  local lb = e(w, "CreateLoadBalancer", { Name = "web", Subnets = { "a", "b" } }).LoadBalancers[1].LoadBalancerArn
  local pairs_ = {}
  for i = 1, n do
    local p = {}
    for _, side in ipairs({ "a", "b" }) do
      p[side] = e(w, "CreateTargetGroup", { Name = i .. "-" .. side, Protocol = "HTTP", Port = 8080,
        VpcId = "vpc-0sim", TargetType = "ip", HealthCheckIntervalSeconds = 5, HealthCheckTimeoutSeconds = 2,
        HealthyThresholdCount = 2 }).TargetGroups[1].TargetGroupArn
      elbv2.register(w, p[side], "10.0." .. i .. "." .. side:byte(), 8080, "task-" .. i .. side)
    end
    p.listener = e(w, "CreateListener", { LoadBalancerArn = lb, Port = 8000 + i, Protocol = "HTTP",
      DefaultActions = { { Type = "forward", ForwardConfig = { TargetGroups = {
        { TargetGroupArn = p.a, Weight = 100 }, { TargetGroupArn = p.b, Weight = 0 } } } } } }).Listeners[1].ListenerArn
    pairs_[i] = p
  end
  return w, lb, pairs_
end

local function awake_names(w)
  local names = {}
  for tg in pairs(elb_state.awake(w)) do names[#names + 1] = tg.name end
  table.sort(names)
  return names
end

local function health(w, tg)
  local d = e(w, "DescribeTargetHealth", { TargetGroupArn = tg }).TargetHealthDescriptions
  return d[1] and d[1].TargetHealth.State
end

-- The minute [m-60, m)'s Sum of a target group's metric (nil: no datapoint).
local function minute_sum(w, name, lb, tg, m)
  local dims = { { Name = "LoadBalancer", Value = elbv2.arn_suffix(lb, "lb") },
    { Name = "TargetGroup", Value = elbv2.arn_suffix(tg, "tg") } }
  local dps = cloudwatch.ops.GetMetricStatistics(w, { Namespace = NS, MetricName = name, Dimensions = dims,
    StartTime = m - 60, EndTime = m, Period = 60, Statistics = { "Sum" } }).Datapoints
  return dps[1] and dps[1].Sum
end

T.test("settled target groups leave the health-check tick; a change wakes only its own", function()
  local w, _, p = fleet(30)
  w:advance(START + 60)
  T.eq(awake_names(w), {}, "all healthy and settled: no group to visit")
  T.eq(health(w, p[7].a), "healthy")
  -- a deregistration wakes its group alone, which drains and then forgets the target
  T.eq(elbv2.deregister(w, p[7].a, "10.0.7." .. ("a"):byte(), 8080), true)
  T.eq(awake_names(w), { "7-a" })
  T.eq(health(w, p[7].a), "draining")
  e(w, "ModifyTargetGroupAttributes", { TargetGroupArn = p[8].a,
    Attributes = { { Key = "deregistration_delay.timeout_seconds", Value = "0" } } })
  T.eq(elbv2.deregister(w, p[8].a, "10.0.8." .. ("a"):byte(), 8080), true)
  T.eq(health(w, p[8].a), nil, "no delay: gone at once")
  w:advance(START + 60 + 301)
  T.eq(health(w, p[7].a), nil, "drained and gone after the delay")
  T.eq(awake_names(w), {}, "settled again")
end)

T.test("a group no listener forwards to any more is reset, and checked again once re-attached", function()
  local w, _, p = fleet(3)
  w:advance(START + 60)
  T.eq(health(w, p[2].b), "healthy")
  -- the listener now forwards to 2-a alone: 2-b is not in use
  e(w, "ModifyListener", { ListenerArn = p[2].listener,
    DefaultActions = { { Type = "forward", TargetGroupArn = p[2].a } } })
  T.eq(health(w, p[2].b), "unused", "shown unused at once")
  w:advance(START + 65)
  T.eq(awake_names(w), {}, "the unused group waits without being visited")
  e(w, "ModifyListener", { ListenerArn = p[2].listener, DefaultActions = { { Type = "forward", ForwardConfig = {
    TargetGroups = { { TargetGroupArn = p[2].a, Weight = 50 }, { TargetGroupArn = p[2].b, Weight = 50 } } } } } })
  w:advance(START + 70)
  T.eq(health(w, p[2].b), "initial", "checks start from scratch once attached")
  w:advance(START + 90)
  T.eq(health(w, p[2].b), "healthy", "two passing checks later")
end)

T.test("a task turning unhealthy is seen by a group that is not settled", function()
  local sick = {}
  local w, _, p = fleet(2, sick)
  sick["task-1a"] = true -- before the first checks: never settled
  w:advance(START + 60)
  T.eq(health(w, p[1].a), "unhealthy")
  T.eq(awake_names(w), { "1-a" }, "an unhealthy group keeps being checked")
  sick["task-1a"] = nil
  w:advance(START + 90)
  T.eq(health(w, p[1].a), "healthy")
  T.eq(awake_names(w), {}, "then leaves the tick")
end)

T.test("the ALB metrics follow every routing change: weights, rules and their priorities", function()
  local w, lb, p = fleet(4)
  w:advance(START + 120)
  T.ok(minute_sum(w, "RequestCount", lb, p[3].a, START + 120) > 5000, "100 requests/s on 3-a")
  T.eq(minute_sum(w, "RequestCount", lb, p[3].b, START + 120), nil, "none on 3-b (weight 0)")
  -- a weight shift: the next minute's requests split 50/50
  elbv2.set_forward(w, p[3].listener, { [p[3].a] = 50, [p[3].b] = 50 })
  w:advance(START + 180)
  local a = minute_sum(w, "RequestCount", lb, p[3].a, START + 180)
  local b = minute_sum(w, "RequestCount", lb, p[3].b, START + 180)
  T.ok(a > 2500 and a < 3500 and b > 2500 and b < 3500, string.format("split %s / %s", a, b))
  -- two catch-all rules on listener 4: the one with the lower priority takes every request
  local all = { { Field = "path-pattern", Values = { "/*" } } }
  local r1 = e(w, "CreateRule", { ListenerArn = p[4].listener, Priority = 1, Conditions = all,
    Actions = { { Type = "forward", TargetGroupArn = p[4].b } } }).Rules[1]
  local r2 = e(w, "CreateRule", { ListenerArn = p[4].listener, Priority = 2, Conditions = all,
    Actions = { { Type = "forward", TargetGroupArn = p[4].a } } }).Rules[1]
  w:advance(START + 240)
  T.eq(minute_sum(w, "RequestCount", lb, p[4].a, START + 240), nil, "rule 1 sends everything to 4-b")
  T.ok(minute_sum(w, "RequestCount", lb, p[4].b, START + 240) > 5000)
  e(w, "SetRulePriorities", { RulePriorities = {
    { RuleArn = r1.RuleArn, Priority = 3 }, { RuleArn = r2.RuleArn, Priority = 1 } } })
  w:advance(START + 300)
  T.ok(minute_sum(w, "RequestCount", lb, p[4].a, START + 300) > 5000, "after SetRulePriorities, 4-a's rule is first")
  T.eq(minute_sum(w, "RequestCount", lb, p[4].b, START + 300), nil)
  -- a deleted listener: its groups publish nothing from the next minute on
  e(w, "DeleteListener", { ListenerArn = p[1].listener })
  w:advance(START + 360)
  T.eq(minute_sum(w, "HealthyHostCount", lb, p[1].a, START + 360), nil, "not routed: no datapoint")
  T.eq(minute_sum(w, "HealthyHostCount", lb, p[1].a, START + 300), 1, "the minute before still has one")
end)

T.test("look-ups by name and by load balancer: creation order, deletions, recreations", function()
  local w, lb, p = fleet(5)
  local by_lb = e(w, "DescribeTargetGroups", { LoadBalancerArn = lb }).TargetGroups
  local names = {}
  for i, tg in ipairs(by_lb) do names[i] = tg.TargetGroupName end
  T.eq(names, { "1-a", "1-b", "2-a", "2-b", "3-a", "3-b", "4-a", "4-b", "5-a", "5-b" }, "creation order")
  e(w, "CreateTargetGroup", { Name = "spare", Protocol = "HTTP", Port = 80, VpcId = "vpc-0sim", TargetType = "ip" })
  T.eq(#e(w, "DescribeTargetGroups", { LoadBalancerArn = lb }).TargetGroups, 10,
    "a group no listener uses is not the load balancer's")
  local d = e(w, "DescribeTargetGroups", { Names = { "4-b", "spare", "1-a" } }).TargetGroups
  T.eq({ d[1].TargetGroupName, d[2].TargetGroupName, d[3].TargetGroupName }, { "4-b", "spare", "1-a" },
    "in the order asked")
  T.eq(d[1].TargetGroupArn, p[4].b)
  local spare = d[2].TargetGroupArn
  e(w, "DeleteTargetGroup", { TargetGroupArn = spare })
  local err = T.raises(function() e(w, "DescribeTargetGroups", { Names = { "spare" } }) end)
  T.eq(err.code, "TargetGroupNotFound")
  local again = e(w, "CreateTargetGroup", { Name = "spare", Protocol = "HTTP", Port = 81, VpcId = "vpc-0sim",
    TargetType = "ip" }).TargetGroups[1].TargetGroupArn
  T.ok(again ~= spare, "a new group under the old name")
  T.eq(elbv2.target_group(w, "spare").arn, again, "the name finds the new one")
  e(w, "DeleteListener", { ListenerArn = p[2].listener })
  local left = e(w, "DescribeTargetGroups", { LoadBalancerArn = lb }).TargetGroups
  T.eq(#left, 8, "the deleted listener's groups are not the load balancer's any more")
  local other = e(w, "CreateLoadBalancer", { Name = "other", Subnets = { "a", "b" } }).LoadBalancers[1].LoadBalancerArn
  e(w, "DeleteLoadBalancer", { LoadBalancerArn = other })
  err = T.raises(function() e(w, "DescribeLoadBalancers", { Names = { "other" } }) end)
  T.eq(err.code, "LoadBalancerNotFound")
  T.eq(e(w, "DescribeLoadBalancers", { Names = { "web" } }).LoadBalancers[1].LoadBalancerArn, lb)
end)

T.test("the same answers whichever order the routing and health changes come in", function()
  -- two worlds, the same changes; one reads its metrics and target health every minute (which
  -- builds and uses every index as it goes), the other only at the end
  local function run(read_each_minute)
    local w, lb, p = fleet(6)
    local seen = {}
    for minute = 1, 12 do
      if minute == 3 then elbv2.set_forward(w, p[2].listener, { [p[2].a] = 30, [p[2].b] = 70 }) end
      if minute == 5 then elbv2.deregister(w, p[5].a, "10.0.5." .. ("a"):byte(), 8080) end
      if minute == 7 then e(w, "DeleteListener", { ListenerArn = p[6].listener }) end
      if minute == 9 then elbv2.register(w, p[5].a, "10.0.5.99", 8080, "task-new") end
      w:advance(START + minute * 60)
      if read_each_minute then
        for i = 1, 6 do health(w, p[i].a) minute_sum(w, "RequestCount", lb, p[i].b, w.now) end
      end
    end
    for i = 1, 6 do
      for _, side in ipairs({ "a", "b" }) do
        for m = START + 60, START + 720, 60 do
          seen[#seen + 1] = tostring(minute_sum(w, "RequestCount", lb, p[i][side], m)) .. "/" ..
            tostring(minute_sum(w, "HealthyHostCount", lb, p[i][side], m))
        end
        seen[#seen + 1] = tostring(health(w, p[i][side]))
      end
    end
    return table.concat(seen, " ")
  end
  T.eq(run(true), run(false))
end)
