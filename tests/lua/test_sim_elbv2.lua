-- The simulated ELBv2: resources, weighted forward actions, rules, errors,
-- target health with a fake ECS, draining, and the traffic split.
local T = require "harness"
local World = require "ecsplay.sim.world"
local elbv2 = require "ecsplay.sim.elbv2"

local START = 1795687200

-- A fake ECS: task_health reads a table the test changes.
local function fake_ecs(health)
  return { name = "ecs", init = function() return {} end,
    task_health = function(_, arn) return health[arn] end,
    task_info = function(_, arn) return { image = "api:v1" } end,
    image_first_start = function() return START end }
end

local function new_world(opts)
  local w = World.new { start = START, seed = 7, traffic = opts and opts.traffic }
  if opts and opts.ecs then w:add_service(opts.ecs) end
  w:add_service(elbv2)
  return w
end

local function call(w, op, input) return elbv2.ops[op](w, input or {}) end

local function fails(w, op, input, code)
  local err = T.raises(function() call(w, op, input) end)
  T.ok(w:is_error(err), "expected a simulator error from " .. op)
  T.eq(err.code, code, op .. " error code")
  T.eq(err.status, 400, op .. " status")
  return err
end

-- LB, three target groups, a :443 listener defaulting to tg c.
local function setup(w)
  local lb = call(w, "CreateLoadBalancer", { Name = "web", Subnets = { "subnet-0sima", "subnet-0simb" } })
    .LoadBalancers[1]
  local tg = {}
  for _, name in ipairs({ "a", "b", "c" }) do
    tg[name] = call(w, "CreateTargetGroup", { Name = "tg-" .. name, Protocol = "HTTP", Port = 8080,
      VpcId = "vpc-0sim", TargetType = "ip" }).TargetGroups[1].TargetGroupArn
  end
  local l = call(w, "CreateListener", { LoadBalancerArn = lb.LoadBalancerArn, Port = 443, Protocol = "HTTP",
    DefaultActions = { { Type = "forward", TargetGroupArn = tg.c } } }).Listeners[1]
  return lb, tg, l
end

T.test("CreateLoadBalancer: ARN, DNS name, provisioning then active", function()
  local w = new_world()
  local lb = setup(w)
  T.ok(lb.LoadBalancerArn:match("^arn:aws:elasticloadbalancing:us%-east%-1:123456789012:loadbalancer/app/web/%x+$"),
    lb.LoadBalancerArn)
  T.eq(#lb.LoadBalancerArn:match("/(%x+)$"), 16)
  T.ok(lb.DNSName:match("^web%-%d+%.us%-east%-1%.elb%.amazonaws%.com$"), lb.DNSName)
  T.eq(lb.State.Code, "provisioning")
  T.eq(lb.Scheme, "internet-facing")
  T.eq(lb.AvailabilityZones[1].ZoneName, "us-east-1a")
  T.eq(lb.AvailabilityZones[2].SubnetId, "subnet-0simb")
  w:advance(START + 30)
  local d = call(w, "DescribeLoadBalancers", { Names = { "web" } })
  T.eq(d.LoadBalancers[1].State.Code, "active")
  fails(w, "DescribeLoadBalancers", { Names = { "nope" } }, "LoadBalancerNotFound")
  fails(w, "DescribeLoadBalancers", { LoadBalancerArns = { lb.LoadBalancerArn .. "0" } }, "LoadBalancerNotFound")
end)

T.test("duplicate names: identical settings are idempotent, different ones fail", function()
  local w = new_world()
  local lb = setup(w)
  local again = call(w, "CreateLoadBalancer", { Name = "web", Subnets = { "subnet-0sima", "subnet-0simb" } })
  T.eq(again.LoadBalancers[1].LoadBalancerArn, lb.LoadBalancerArn)
  fails(w, "CreateLoadBalancer", { Name = "web", Subnets = { "subnet-0sima", "subnet-0simb" }, Scheme = "internal" },
    "DuplicateLoadBalancerName")
  fails(w, "CreateTargetGroup", { Name = "tg-a", Protocol = "HTTP", Port = 9090, VpcId = "vpc-0sim" },
    "DuplicateTargetGroupName")
  fails(w, "CreateLoadBalancer", { Name = "one", Subnets = { "subnet-0sima" } }, "InvalidConfigurationRequest")
end)

T.test("target groups: AWS health check defaults, attributes, LoadBalancerArns", function()
  local w = new_world()
  local lb, tg = setup(w)
  local d = call(w, "DescribeTargetGroups", { Names = { "tg-c", "tg-a" } }).TargetGroups
  T.eq(#d, 2)
  local c, a = d[1], d[2]
  T.eq(c.HealthCheckIntervalSeconds, 30)
  T.eq(c.HealthyThresholdCount, 5)
  T.eq(c.UnhealthyThresholdCount, 2)
  T.eq(c.HealthCheckTimeoutSeconds, 5)
  T.eq(c.HealthCheckPath, "/")
  T.eq(c.Matcher, { HttpCode = "200" })
  T.eq(c.HealthCheckPort, "traffic-port")
  T.eq(c.LoadBalancerArns, { lb.LoadBalancerArn })
  T.eq(a.LoadBalancerArns, {})
  local by_lb = call(w, "DescribeTargetGroups", { LoadBalancerArn = lb.LoadBalancerArn }).TargetGroups
  T.eq(#by_lb, 1)
  T.eq(by_lb[1].TargetGroupArn, tg.c)
  local attrs = call(w, "DescribeTargetGroupAttributes", { TargetGroupArn = tg.a }).Attributes
  local found
  for _, kv in ipairs(attrs) do if kv.Key == "deregistration_delay.timeout_seconds" then found = kv.Value end end
  T.eq(found, "300")
  call(w, "ModifyTargetGroupAttributes", { TargetGroupArn = tg.a,
    Attributes = { { Key = "deregistration_delay.timeout_seconds", Value = "30" } } })
  fails(w, "ModifyTargetGroupAttributes", { TargetGroupArn = tg.a,
    Attributes = { { Key = "nope", Value = "1" } } }, "InvalidConfigurationRequest")
  local m = call(w, "ModifyTargetGroup", { TargetGroupArn = tg.a, HealthCheckPath = "/health",
    HealthyThresholdCount = 2 }).TargetGroups[1]
  T.eq(m.HealthCheckPath, "/health")
  T.eq(m.HealthyThresholdCount, 2)
  fails(w, "DeleteTargetGroup", { TargetGroupArn = tg.c }, "ResourceInUse")
  call(w, "DeleteTargetGroup", { TargetGroupArn = tg.b })
  fails(w, "DescribeTargetGroups", { TargetGroupArns = { tg.b } }, "TargetGroupNotFound")
end)

T.test("CreateRule with a weighted forward; DescribeRules shape and the default rule", function()
  local w = new_world()
  local _, tg, l = setup(w)
  local r = call(w, "CreateRule", { ListenerArn = l.ListenerArn, Priority = 10,
    Conditions = { { Field = "path-pattern", PathPatternConfig = { Values = { "/*" } } } },
    Actions = { { Type = "forward", ForwardConfig = { TargetGroups = {
      { TargetGroupArn = tg.a, Weight = 90 }, { TargetGroupArn = tg.b, Weight = 10 } } } } },
  }).Rules[1]
  T.ok(r.RuleArn:match(":listener%-rule/app/web/%x+/%x+/%x+$"), r.RuleArn)
  local rules = call(w, "DescribeRules", { ListenerArn = l.ListenerArn }).Rules
  T.eq(#rules, 2)
  T.eq(rules[1], {
    RuleArn = r.RuleArn, Priority = "10", IsDefault = false,
    Conditions = { { Field = "path-pattern", Values = { "/*" }, PathPatternConfig = { Values = { "/*" } } } },
    Actions = { { Type = "forward", ForwardConfig = {
      TargetGroups = { { TargetGroupArn = tg.a, Weight = 90 }, { TargetGroupArn = tg.b, Weight = 10 } },
      TargetGroupStickinessConfig = { Enabled = false } } } },
  })
  T.eq(rules[2].IsDefault, true)
  T.eq(rules[2].Priority, "default")
  T.eq(rules[2].Conditions, {})
  -- a single target group: AWS echoes TargetGroupArn too, with weight 1
  T.eq(rules[2].Actions, { { Type = "forward", TargetGroupArn = tg.c, ForwardConfig = {
    TargetGroups = { { TargetGroupArn = tg.c, Weight = 1 } }, TargetGroupStickinessConfig = { Enabled = false } } } })
  local byarn = call(w, "DescribeRules", { RuleArns = { r.RuleArn } }).Rules
  T.eq(#byarn, 1)
  T.eq(byarn[1].RuleArn, r.RuleArn)
  -- listener output carries the same action shape
  local dl = call(w, "DescribeListeners", { ListenerArns = { l.ListenerArn } }).Listeners[1]
  T.eq(dl.DefaultActions[1].TargetGroupArn, tg.c)
  T.eq(dl.Port, 443)
end)

T.test("ModifyRule weights read back through DescribeRules", function()
  local w = new_world()
  local _, tg, l = setup(w)
  local r = call(w, "CreateRule", { ListenerArn = l.ListenerArn, Priority = 5,
    Conditions = { { Field = "path-pattern", Values = { "/api/*" } } },
    Actions = { { Type = "forward", TargetGroupArn = tg.a } } }).Rules[1]
  local m = call(w, "ModifyRule", { RuleArn = r.RuleArn, Actions = { { Type = "forward", ForwardConfig = {
    TargetGroups = { { TargetGroupArn = tg.a, Weight = 75 }, { TargetGroupArn = tg.b, Weight = 25 } },
    TargetGroupStickinessConfig = { Enabled = true, DurationSeconds = 300 } } } } }).Rules[1]
  local want = { { Type = "forward", ForwardConfig = {
    TargetGroups = { { TargetGroupArn = tg.a, Weight = 75 }, { TargetGroupArn = tg.b, Weight = 25 } },
    TargetGroupStickinessConfig = { Enabled = true, DurationSeconds = 300 } } } }
  T.eq(m.Actions, want)
  local d = call(w, "DescribeRules", { RuleArns = { r.RuleArn } }).Rules[1]
  T.eq(d.Actions, want)
  T.eq(d.Conditions, { { Field = "path-pattern", Values = { "/api/*" }, PathPatternConfig = { Values = { "/api/*" } } } })
  T.eq(elbv2.get_forward(w, r.RuleArn), { [tg.a] = 75, [tg.b] = 25 })
  -- set_forward keeps existing order and stickiness
  elbv2.set_forward(w, r.RuleArn, { [tg.a] = 0, [tg.b] = 100 })
  d = call(w, "DescribeRules", { RuleArns = { r.RuleArn } }).Rules[1]
  T.eq(d.Actions[1].ForwardConfig.TargetGroups, { { TargetGroupArn = tg.a, Weight = 0 }, { TargetGroupArn = tg.b, Weight = 100 } })
  T.eq(d.Actions[1].ForwardConfig.TargetGroupStickinessConfig, { Enabled = true, DurationSeconds = 300 })
  -- on a listener: its default rule
  elbv2.set_forward(w, l.ListenerArn, { [tg.c] = 1, [tg.b] = 1 })
  T.eq(elbv2.get_forward(w, l.ListenerArn), { [tg.c] = 1, [tg.b] = 1 })
end)

T.test("errors: unknown rule, target group, listener; bad weights; priorities", function()
  local w = new_world()
  local lb, tg, l = setup(w)
  local e = fails(w, "ModifyRule", { RuleArn = l.ListenerArn:gsub("listener/", "listener-rule/") .. "/0000000000000000",
    Actions = { { Type = "forward", TargetGroupArn = tg.a } } }, "RuleNotFound")
  T.ok(e.message:find("rule"), e.message)
  fails(w, "DescribeRules", { RuleArns = { "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener-rule/app/x/y/z/q" } },
    "RuleNotFound")
  fails(w, "CreateRule", { ListenerArn = l.ListenerArn .. "x", Priority = 1,
    Conditions = { { Field = "path-pattern", Values = { "/*" } } },
    Actions = { { Type = "forward", TargetGroupArn = tg.a } } }, "ListenerNotFound")
  fails(w, "CreateRule", { ListenerArn = l.ListenerArn, Priority = 1,
    Conditions = { { Field = "path-pattern", Values = { "/*" } } },
    Actions = { { Type = "forward", TargetGroupArn = tg.a .. "0" } } }, "TargetGroupNotFound")
  for _, bad in ipairs({ 1000, -1, 2.5 }) do
    fails(w, "CreateRule", { ListenerArn = l.ListenerArn, Priority = 1,
      Conditions = { { Field = "path-pattern", Values = { "/*" } } },
      Actions = { { Type = "forward", ForwardConfig = { TargetGroups = { { TargetGroupArn = tg.a, Weight = bad } } } } } },
      "ValidationError")
  end
  -- TargetGroupArn and ForwardConfig must agree
  fails(w, "CreateRule", { ListenerArn = l.ListenerArn, Priority = 1,
    Conditions = { { Field = "path-pattern", Values = { "/*" } } },
    Actions = { { Type = "forward", TargetGroupArn = tg.a, ForwardConfig = { TargetGroups = {
      { TargetGroupArn = tg.b, Weight = 1 } } } } } }, "ValidationError")
  local ok = call(w, "CreateRule", { ListenerArn = l.ListenerArn, Priority = 1,
    Conditions = { { Field = "host-header", Values = { "api.example.com" } } },
    Actions = { { Type = "forward", TargetGroupArn = tg.a, ForwardConfig = { TargetGroups = {
      { TargetGroupArn = tg.a, Weight = 5 } } } } } }).Rules[1]
  T.eq(ok.Actions[1].TargetGroupArn, tg.a)
  fails(w, "CreateRule", { ListenerArn = l.ListenerArn, Priority = 1,
    Conditions = { { Field = "path-pattern", Values = { "/x" } } },
    Actions = { { Type = "forward", TargetGroupArn = tg.b } } }, "PriorityInUse")
  local r2 = call(w, "CreateRule", { ListenerArn = l.ListenerArn, Priority = 2,
    Conditions = { { Field = "path-pattern", Values = { "/x" } } },
    Actions = { { Type = "forward", TargetGroupArn = tg.b } } }).Rules[1]
  fails(w, "SetRulePriorities", { RulePriorities = { { RuleArn = r2.RuleArn, Priority = 1 } } }, "PriorityInUse")
  local sp = call(w, "SetRulePriorities", { RulePriorities = {
    { RuleArn = r2.RuleArn, Priority = 1 }, { RuleArn = ok.RuleArn, Priority = 3 } } }).Rules
  T.eq(#sp, 2)
  local rules = call(w, "DescribeRules", { ListenerArn = l.ListenerArn }).Rules
  T.eq({ rules[1].Priority, rules[2].Priority, rules[3].Priority }, { "1", "3", "default" })
  local default = rules[3].RuleArn
  fails(w, "DeleteRule", { RuleArn = default }, "OperationNotPermitted")
  fails(w, "CreateListener", { LoadBalancerArn = lb.LoadBalancerArn, Port = 443, Protocol = "HTTP",
    DefaultActions = { { Type = "forward", TargetGroupArn = tg.a } } }, "DuplicateListener")
  -- a target group serves one load balancer
  local lb2 = call(w, "CreateLoadBalancer", { Name = "other", Subnets = { "s-1", "s-2" } }).LoadBalancers[1]
  fails(w, "CreateListener", { LoadBalancerArn = lb2.LoadBalancerArn, Port = 80, Protocol = "HTTP",
    DefaultActions = { { Type = "forward", TargetGroupArn = tg.a } } }, "TargetGroupAssociationLimit")
  call(w, "DeleteRule", { RuleArn = r2.RuleArn })
  fails(w, "DescribeRules", { RuleArns = { r2.RuleArn } }, "RuleNotFound")
  T.raises(function() elbv2.set_forward(w, r2.RuleArn, { [tg.a] = 1 }) end, "RuleNotFound")
end)

local function health(w, tg_arn)
  local out = {}
  for _, d in ipairs(call(w, "DescribeTargetHealth", { TargetGroupArn = tg_arn }).TargetHealthDescriptions) do
    out[d.Target.Id] = d.TargetHealth
  end
  return out
end

T.test("target health follows ECS task health; draining then gone", function()
  local task_health = { t1 = "starting", t2 = "healthy" }
  local w = new_world { ecs = fake_ecs(task_health) }
  local _, tg = setup(w)
  call(w, "ModifyTargetGroup", { TargetGroupArn = tg.c, HealthCheckIntervalSeconds = 10,
    HealthyThresholdCount = 3, UnhealthyThresholdCount = 2 })
  call(w, "ModifyTargetGroupAttributes", { TargetGroupArn = tg.c,
    Attributes = { { Key = "deregistration_delay.timeout_seconds", Value = "60" } } })
  elbv2.register(w, tg.c, "10.0.0.1", 8080, "t1")
  elbv2.register(w, tg.c, "10.0.0.2", 8080, "t2")
  local h = health(w, tg.c)
  T.eq(h["10.0.0.1"], { State = "initial", Reason = "Elb.RegistrationInProgress",
    Description = "Target registration is in progress" })
  w:advance(START + 10)
  T.eq(health(w, tg.c)["10.0.0.2"].Reason, "Elb.InitialHealthChecking")
  -- three passes at 10 s: checks at +5, +15, +25
  w:advance(START + 20)
  T.eq(health(w, tg.c)["10.0.0.2"].State, "initial")
  w:advance(START + 25)
  T.eq(health(w, tg.c)["10.0.0.2"], { State = "healthy" })
  T.eq(health(w, tg.c)["10.0.0.1"].State, "initial", "a starting task stays initial")
  T.eq(elbv2.healthy_count(w, tg.c), 1)
  task_health.t1 = "healthy"
  w:advance(START + 55)
  T.eq(health(w, tg.c)["10.0.0.1"].State, "healthy")
  T.eq(elbv2.healthy_count(w, tg.c), 2)
  -- unhealthy after two failed checks
  task_health.t1 = "unhealthy"
  w:advance(START + 65)
  T.eq(health(w, tg.c)["10.0.0.1"].State, "healthy", "one failure is not enough")
  w:advance(START + 75)
  T.eq(health(w, tg.c)["10.0.0.1"], { State = "unhealthy", Reason = "Target.ResponseCodeMismatch",
    Description = "Health checks failed with these codes: [500]" })
  task_health.t2 = "stopped"
  w:advance(START + 95)
  T.eq(health(w, tg.c)["10.0.0.2"].Reason, "Target.FailedHealthChecks")
  -- draining for the deregistration delay, then gone
  T.eq(elbv2.deregister(w, tg.c, "10.0.0.2", 8080), true)
  T.eq(health(w, tg.c)["10.0.0.2"], { State = "draining", Reason = "Target.DeregistrationInProgress",
    Description = "Target deregistration is in progress" })
  w:advance(START + 95 + 59)
  T.eq(health(w, tg.c)["10.0.0.2"].State, "draining")
  w:advance(START + 95 + 60)
  T.eq(health(w, tg.c)["10.0.0.2"], nil)
  local one = call(w, "DescribeTargetHealth", { TargetGroupArn = tg.c,
    Targets = { { Id = "10.0.0.2", Port = 8080 } } }).TargetHealthDescriptions[1]
  T.eq(one.TargetHealth.State, "unused")
  T.eq(one.TargetHealth.Reason, "Target.NotRegistered")
  T.eq(one.HealthCheckPort, "8080")
end)

T.test("RegisterTargets without tasks; unused without a load balancer; DeregisterTargets errors", function()
  local w = new_world()
  local _, tg = setup(w)
  call(w, "RegisterTargets", { TargetGroupArn = tg.c, Targets = { { Id = "10.0.1.1" } } })
  call(w, "RegisterTargets", { TargetGroupArn = tg.a, Targets = { { Id = "10.0.1.2", Port = 9000 } } })
  -- checks at +5, +35, +65, +95, +125: the fifth pass makes it healthy
  w:advance(START + 5 + 3 * 30)
  T.eq(health(w, tg.c)["10.0.1.1"].State, "initial", "four passes of five")
  w:advance(START + 5 + 4 * 30)
  T.eq(health(w, tg.c)["10.0.1.1"].State, "healthy")
  T.eq(health(w, tg.a)["10.0.1.2"], { State = "unused", Reason = "Target.NotInUse",
    Description = "Target group is not configured to receive traffic from the load balancer" })
  fails(w, "DeregisterTargets", { TargetGroupArn = tg.a, Targets = { { Id = "10.9.9.9" } } }, "InvalidTarget")
  -- without a load balancer the target goes at once
  call(w, "DeregisterTargets", { TargetGroupArn = tg.a, Targets = { { Id = "10.0.1.2", Port = 9000 } } })
  T.eq(health(w, tg.a)["10.0.1.2"], nil)
  fails(w, "DescribeTargetHealth", { TargetGroupArn = tg.a .. "f" }, "TargetGroupNotFound")
end)

T.test("traffic(): production listener, match-all rule, weights split", function()
  local w = new_world { traffic = { rps = 200 } }
  local lb, tg, l = setup(w)
  local t = elbv2.traffic(w)
  T.eq(t[tg.c], { rps = 200, weight = 100, lb = lb.LoadBalancerArn })
  T.eq(t[tg.a], { rps = 0, weight = 0 })
  -- a non-match-all rule takes nothing; the /* rule takes everything
  call(w, "CreateRule", { ListenerArn = l.ListenerArn, Priority = 5,
    Conditions = { { Field = "path-pattern", Values = { "/admin/*" } } },
    Actions = { { Type = "forward", TargetGroupArn = tg.c } } })
  local r = call(w, "CreateRule", { ListenerArn = l.ListenerArn, Priority = 10,
    Conditions = { { Field = "path-pattern", PathPatternConfig = { Values = { "/*" } } } },
    Actions = { { Type = "forward", ForwardConfig = { TargetGroups = {
      { TargetGroupArn = tg.a, Weight = 90 }, { TargetGroupArn = tg.b, Weight = 10 } } } } } }).Rules[1]
  t = elbv2.traffic(w)
  T.near(t[tg.a].rps, 180, 1e-9)
  T.near(t[tg.a].weight, 90, 1e-9)
  T.near(t[tg.b].rps, 20, 1e-9)
  T.near(t[tg.b].weight, 10, 1e-9)
  T.eq(t[tg.c].rps, 0)
  T.eq(t[tg.c].weight, 0)
  elbv2.set_forward(w, r.RuleArn, { [tg.a] = 1, [tg.b] = 3 })
  t = elbv2.traffic(w)
  T.near(t[tg.b].weight, 75, 1e-9)
  -- a test listener gets nothing unless the scenario gives it a rate
  local tg_t = call(w, "CreateTargetGroup", { Name = "tg-test", Protocol = "HTTP", Port = 8080,
    VpcId = "vpc-0sim", TargetType = "ip" }).TargetGroups[1].TargetGroupArn
  call(w, "CreateListener", { LoadBalancerArn = lb.LoadBalancerArn, Port = 8443, Protocol = "HTTP",
    DefaultActions = { { Type = "forward", TargetGroupArn = tg_t } } })
  t = elbv2.traffic(w)
  T.eq(t[tg_t].rps, 0)
  T.eq(t[tg_t].lb, lb.LoadBalancerArn)
  w.traffic = { rps = 100, listeners = { [8443] = 100 } }
  t = elbv2.traffic(w)
  T.near(t[tg_t].rps, 100, 1e-9)
  T.near(t[tg_t].weight, 50, 1e-9)
  T.near(t[tg.b].weight, 37.5, 1e-9)
end)

T.test("tags and attributes, DeleteLoadBalancer", function()
  local w = new_world()
  local lb, tg, l = setup(w)
  call(w, "AddTags", { ResourceArns = { lb.LoadBalancerArn, tg.a }, Tags = { { Key = "team", Value = "web" } } })
  call(w, "AddTags", { ResourceArns = { tg.a }, Tags = { { Key = "tier", Value = "1" } } })
  call(w, "RemoveTags", { ResourceArns = { tg.a }, TagKeys = { "team" } })
  local d = call(w, "DescribeTags", { ResourceArns = { lb.LoadBalancerArn, tg.a } }).TagDescriptions
  T.eq(d[1].Tags, { { Key = "team", Value = "web" } })
  T.eq(d[2].Tags, { { Key = "tier", Value = "1" } })
  fails(w, "AddTags", { ResourceArns = { tg.a .. "0" }, Tags = { { Key = "k", Value = "v" } } }, "TargetGroupNotFound")
  call(w, "ModifyLoadBalancerAttributes", { LoadBalancerArn = lb.LoadBalancerArn,
    Attributes = { { Key = "deletion_protection.enabled", Value = "true" } } })
  fails(w, "DeleteLoadBalancer", { LoadBalancerArn = lb.LoadBalancerArn }, "OperationNotPermitted")
  call(w, "ModifyLoadBalancerAttributes", { LoadBalancerArn = lb.LoadBalancerArn,
    Attributes = { { Key = "deletion_protection.enabled", Value = "false" } } })
  call(w, "DeleteLoadBalancer", { LoadBalancerArn = lb.LoadBalancerArn })
  call(w, "DeleteLoadBalancer", { LoadBalancerArn = lb.LoadBalancerArn }) -- succeeds again, as AWS
  fails(w, "DescribeListeners", { ListenerArns = { l.ListenerArn } }, "ListenerNotFound")
  call(w, "DeleteTargetGroup", { TargetGroupArn = tg.c }) -- no longer in use
end)
