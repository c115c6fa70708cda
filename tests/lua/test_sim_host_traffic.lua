-- Host-based traffic in the simulator (scenario traffic.hosts): which load balancers a host's
-- requests reach, which rule takes them (priority, wildcards, case, other conditions), how the
-- forward weights split them, and what the scenario file may say.
local T = require "harness"
local World = require "ecsplay.sim.world"
local elbv2 = require "ecsplay.sim.elbv2"
local scenario = require "ecsplay.sim.scenario"

local START = 1795687200

local function call(w, op, input) return elbv2.ops[op](w, input or {}) end

local function new_world(traffic)
  local w = World.new { start = START, seed = 7, traffic = traffic }
  w:add_service(elbv2)
  return w
end

local function tgs(w, names)
  local out = {}
  for _, name in ipairs(names) do
    out[name] = call(w, "CreateTargetGroup", { Name = name, Protocol = "HTTP", Port = 8080,
      VpcId = "vpc-0sim", TargetType = "ip" }).TargetGroups[1].TargetGroupArn
  end
  return out
end

-- A load balancer with one listener on `port` whose default action forwards to `default_tg`.
local function lb_with_listener(w, name, port, default_tg)
  local lb = call(w, "CreateLoadBalancer", { Name = name, Subnets = { "subnet-0sima", "subnet-0simb" } })
    .LoadBalancers[1]
  return lb, call(w, "CreateListener", { LoadBalancerArn = lb.LoadBalancerArn, Port = port, Protocol = "HTTP",
    DefaultActions = { { Type = "forward", TargetGroupArn = default_tg } } }).Listeners[1]
end

local function host_rule(w, l, priority, hosts, forward, extra)
  local conditions = { { Field = "host-header", HostHeaderConfig = { Values = hosts } } }
  for _, c in ipairs(extra or {}) do conditions[#conditions + 1] = c end
  return call(w, "CreateRule", { ListenerArn = l.ListenerArn, Priority = priority, Conditions = conditions,
    Actions = { { Type = "forward", ForwardConfig = { TargetGroups = forward } } } }).Rules[1]
end

T.test("a host's requests go to the first rule naming it, split by its weights", function()
  local w = new_world { rps = 0, hosts = { ["api.example.com"] = 100, ["web.example.com"] = 40 } }
  local tg = tgs(w, { "api-a", "api-b", "web", "dflt" })
  local lb, l = lb_with_listener(w, "front", 80, tg.dflt)
  host_rule(w, l, 2, { "web.example.com" }, { { TargetGroupArn = tg.web, Weight = 1 } })
  local api = host_rule(w, l, 1, { "API.Example.com" }, -- compared case-insensitively, as ALB does
    { { TargetGroupArn = tg["api-a"], Weight = 3 }, { TargetGroupArn = tg["api-b"], Weight = 1 } })
  local t = elbv2.traffic(w)
  T.near(t[tg["api-a"]].rps, 75, 1e-9)
  T.near(t[tg["api-b"]].rps, 25, 1e-9)
  T.near(t[tg.web].rps, 40, 1e-9)
  T.eq(t[tg.dflt].rps, 0, "a host some rule names never falls through to the default action")
  T.near(t[tg["api-a"]].weight, 75 / 140 * 100, 1e-9, "weight: share of the load balancer's traffic")
  T.eq(t[tg.web].lb, lb.LoadBalancerArn)
  -- a weight shift on the rule moves that host's traffic only
  elbv2.set_forward(w, api.RuleArn, { [tg["api-a"]] = 0, [tg["api-b"]] = 1 })
  t = elbv2.traffic(w)
  T.eq(t[tg["api-a"]].rps, 0)
  T.near(t[tg["api-b"]].rps, 100, 1e-9)
  T.near(t[tg.web].rps, 40, 1e-9)
end)

T.test("priority, wildcards and conditions a plain GET / cannot meet", function()
  local w = new_world { rps = 0, hosts = { ["a.shop.example.com"] = 10, ["b.shop.example.com"] = 20,
    ["x1.example.com"] = 5 } }
  local tg = tgs(w, { "wild", "exact", "header", "q", "dflt" })
  local _, l = lb_with_listener(w, "front", 443, tg.dflt)
  -- priority 1 needs a header a plain request lacks: never taken
  host_rule(w, l, 1, { "a.shop.example.com" }, { { TargetGroupArn = tg.header, Weight = 1 } },
    { { Field = "http-header", HttpHeaderConfig = { HttpHeaderName = "X-Canary", Values = { "1" } } } })
  host_rule(w, l, 2, { "*.shop.example.com" }, { { TargetGroupArn = tg.wild, Weight = 1 } },
    { { Field = "path-pattern", PathPatternConfig = { Values = { "/*" } } } })
  host_rule(w, l, 3, { "b.shop.example.com" }, { { TargetGroupArn = tg.exact, Weight = 1 } })
  host_rule(w, l, 4, { "x?.example.com" }, { { TargetGroupArn = tg.q, Weight = 1 } })
  local t = elbv2.traffic(w)
  T.eq(t[tg.header].rps, 0)
  T.near(t[tg.wild].rps, 30, 1e-9, "the wildcard rule comes first for both shop hosts")
  T.eq(t[tg.exact].rps, 0)
  T.near(t[tg.q].rps, 5, 1e-9, "? matches one character")
  T.eq(t[tg.dflt].rps, 0)
end)

T.test("a host reaches only the load balancers that name it, on their production listener", function()
  local w = new_world { rps = 0, hosts = { ["one.example.com"] = 50, ["nowhere.example.com"] = 999 } }
  local tg = tgs(w, { "one", "two", "d1", "d2", "side" })
  local _, l1 = lb_with_listener(w, "lb-one", 443, tg.d1)
  local lb2, l2 = lb_with_listener(w, "lb-two", 80, tg.d2)
  host_rule(w, l1, 1, { "one.example.com" }, { { TargetGroupArn = tg.one, Weight = 1 } })
  host_rule(w, l2, 1, { "two.example.com" }, { { TargetGroupArn = tg.two, Weight = 1 } })
  -- a second listener on lb-two naming the host is not its production listener (80 is)
  local side = call(w, "CreateListener", { LoadBalancerArn = lb2.LoadBalancerArn, Port = 8080, Protocol = "HTTP",
    DefaultActions = { { Type = "forward", TargetGroupArn = tg.side } } }).Listeners[1]
  host_rule(w, side, 1, { "one.example.com" }, { { TargetGroupArn = tg.side, Weight = 1 } })
  local t = elbv2.traffic(w)
  T.near(t[tg.one].rps, 50, 1e-9)
  T.eq(t[tg.two].rps, 0, "no traffic for a host the scenario does not list")
  T.eq(t[tg.side].rps, 0)
  T.eq(t[tg.d1].rps, 0)
  T.eq(t[tg.d2].rps, 0, "an unnamed host reaches no load balancer")
  T.near(t[tg.one].weight, 100, 1e-9)
end)

T.test("rps and hosts add up on the production listener", function()
  local w = new_world { rps = 100, hosts = { ["api.example.com"] = 100 } }
  local tg = tgs(w, { "api", "dflt" })
  local _, l = lb_with_listener(w, "front", 80, tg.dflt)
  host_rule(w, l, 1, { "api.example.com" }, { { TargetGroupArn = tg.api, Weight = 1 } })
  local t = elbv2.traffic(w)
  T.near(t[tg.api].rps, 100, 1e-9)
  T.near(t[tg.dflt].rps, 100, 1e-9, "requests naming no host take the default action")
  T.near(t[tg.api].weight, 50, 1e-9)
end)

local function load_err(src)
  local path = os.tmpname()
  local fh = assert(io.open(path, "w"))
  fh:write(src)
  fh:close()
  local ok, err = pcall(scenario.load, path)
  os.remove(path)
  T.ok(not ok, "expected the scenario to be refused")
  return tostring(err)
end

T.test("the scenario's traffic.hosts is checked and normalised", function()
  local path = os.tmpname()
  local fh = assert(io.open(path, "w"))
  fh:write('return { traffic = { rps = 0, hosts = { ["API.example.com"] = 30 } } }')
  fh:close()
  local sc = scenario.load(path)
  os.remove(path)
  T.eq(sc.traffic.hosts, { ["api.example.com"] = 30 })
  local msg = load_err('return { traffic = { hosts = { [1] = 5 } } }')
  T.ok(msg:find("traffic.hosts: keys are host names", 1, true), msg)
  msg = load_err('return { traffic = { hosts = { ["a b.example.com"] = 5 } } }')
  T.ok(msg:find('got string "a b.example.com"', 1, true), msg)
  msg = load_err('return { traffic = { hosts = { ["api.example.com"] = -1 } } }')
  T.ok(msg:find('traffic.hosts["api.example.com"]: expected a number >= 0', 1, true), msg)
  msg = load_err('return { traffic = { hosts = 5 } }')
  T.ok(msg:find("traffic.hosts: expected a table", 1, true), msg)
end)

