-- Fewer ELBv2 look-ups per rollout (rollout/traffic.lua over aws/batch.lua), with answers
-- unchanged: rollouts whose listeners share a load balancer read its listeners and their rules
-- once between them; resolve takes the target groups its strategy just described; a look-up
-- joins an identical read in flight, while the reads that must be fresh (receiving() before a
-- rollback removes capacity, get() after a change) never do; read-only callers share one
-- answer and never see another caller's changes to its own. Batched and unbatched runs give
-- the same points, weights, errors, reports and final world.
local T = require "harness"
local R = require "rollout_sim"
local W = require "fleet_world"
local aws = require "ecsplay.aws"
local batch = require "ecsplay.aws.batch"
local traffic = require "ecsplay.rollout.traffic"
local rollout = require "ecsplay.rollout"
local gate = require "ecsplay.gate"
local json = require "ecsplay.json"
local errors = require "ecsplay.errors"
local sched = require "ecsplay.sched"
local ecsplay = require "ecsplay"
local model = require "ecsplay.aws.model"
local query = require "ecsplay.aws.protocol.query"

local received -- "service.Operation" → requests the simulator received (count: ELBv2's)
local delay = {} -- "Operation" → seconds its answers take to come back (computed when sent)
local answer = {} -- "Operation" → fn(res) → the answer the client gets instead of res

local function fresh(n, batching)
  local sim = R.fresh(W.shared_lb_scenario(n))
  delay, answer = {}, {}
  received = W.counting_client(sim, { batching = batching, rate_limits = false,
    answer = function(name, _, res, msg, kind)
      local op = name:match("%.(.+)$")
      if delay[op] then sched.sleep(delay[op]) end -- answers computed when sent, back later
      if answer[op] and res then res = answer[op](res) end
      return res, msg, kind
    end })
  return sim
end

local ELBV2 = "elasticloadbalancing." -- ELBv2's signing name, as W.operation_of spells it
local function count(op) return received[ELBV2 .. op] or 0 end

-- Runs fns at the same instant, each in a task; → their results (ok, value...) in order.
local function together(fns)
  local tasks, out = {}, {}
  for i, fn in ipairs(fns) do tasks[i] = sched.spawn(fn) end
  for i, t in ipairs(tasks) do out[i] = table.pack(t:result()) end
  return out
end

local function tg_arn(name)
  return R.sim:call("elbv2", "DescribeTargetGroups", { Names = { name } }, "control").TargetGroups[1].TargetGroupArn
end

local function pair(i) return { tg_arn(("svc%d-stable"):format(i)), tg_arn(("svc%d-canary"):format(i)) } end

local function listener_of(i)
  local lb = R.sim:call("elbv2", "DescribeLoadBalancers", { Names = { "lb1" } }, "control").LoadBalancers[1]
  for _, l in ipairs(R.sim:call("elbv2", "DescribeListeners", { LoadBalancerArn = lb.LoadBalancerArn },
    "control").Listeners) do
    if l.Port == 8000 + i then return l.ListenerArn end
  end
end

-- resolve of every pair at once: { { point, weights } ... }
local function resolve_all(n)
  local fns = {}
  for i = 1, n do
    local tgs = pair(i)
    fns[i] = function() return traffic.resolve(nil, tgs, "rule") end
  end
  local out = {}
  for i, r in ipairs(together(fns)) do
    T.ok(r[1], "pair " .. i .. ": " .. tostring(r[1] or errors.describe(r[2])))
    out[i] = { r[2], r[3] }
  end
  return out
end

T.test("rollouts on one load balancer read its listeners and rules once; same points batched and not", function()
  local n = 6
  fresh(n, true)
  local batched = resolve_all(n)
  T.eq(count("DescribeListeners"), 1, "the load balancer's listeners once")
  T.eq(count("DescribeRules"), n, "each listener's rules once, for all rollouts")
  T.eq(count("DescribeTargetGroups"), 1, "their target groups in one call")
  fresh(n, false)
  local plain = resolve_all(n)
  T.eq(count("DescribeRules"), n * n, "unbatched: every rollout every listener")
  T.eq(batched, plain, "points and weights")
  for i = 1, n do
    T.eq(batched[i][1], { kind = "listener", arn = listener_of(i) }, "pair " .. i .. "'s listener")
    local tgs = pair(i)
    T.eq(batched[i][2], { [tgs[1]] = 100, [tgs[2]] = 0 }, "the weights read with it")
    T.eq(batched[i][2], traffic.get(batched[i][1]), "what get() reads")
  end
end)

T.test("target groups the strategy just described are not described again", function()
  fresh(2, true)
  local seen, a, b = traffic.recording_target_groups(function()
    return traffic.target_group_arn("svc1-stable", "stable.target_group"),
      traffic.target_group_arn("svc1-canary", "canary.target_group")
  end)
  T.eq({ a, b }, pair(1))
  T.eq(seen[a].TargetGroupName, "svc1-stable")
  T.eq(seen[b].TargetGroupName, "svc1-canary")
  local before = count("DescribeTargetGroups")
  local point = traffic.resolve(nil, { a, b }, "rule", seen)
  T.eq(count("DescribeTargetGroups"), before, "no DescribeTargetGroups")
  T.eq(point, { kind = "listener", arn = listener_of(1) })
  -- only what was described inside, and an error inside comes out unchanged
  local outer = traffic.recording_target_groups(function()
    traffic.target_group_arn("svc2-stable")
    T.raises(function() traffic.recording_target_groups(function()
      traffic.target_group_arn("svc2-canary")
      error(errors.bad_input("inner", "x"), 0)
    end) end, "inner")
  end)
  T.eq(outer[tg_arn("svc2-stable")].TargetGroupName, "svc2-stable")
  T.eq(outer[tg_arn("svc2-canary")].TargetGroupName, "svc2-canary", "nested: passed up")
  T.eq(outer[a], nil, "not what was described before")
  -- a strategy whose side names no target group: resolve describes the one it lacks
  before = count("DescribeTargetGroups")
  T.eq(traffic.resolve(nil, { a, b }, "rule", { [a] = seen[a] }), point)
  T.eq(count("DescribeTargetGroups"), before + 1)
end)

-- resolve's error (or point) for each case, as text.
local function resolve_outcomes()
  local l1 = listener_of(1)
  local fake_rule = l1:gsub(":listener/", ":listener-rule/") .. "/0123456789abcdef"
  local fake_listener = l1:gsub("/[^/]+$", "/0123456789abcdef")
  local cases = {
    { nil, { tg_arn("svc1-stable"), tg_arn("svc2-canary") } }, -- no rule forwards to both
    { nil, pair(1) },                                           -- two rules do (see below)
    { fake_rule, {} }, { fake_listener, {} }, { "api-rule", {} }, { 42, {} },
    { l1, {} },
  }
  local out = {}
  for i, c in ipairs(cases) do
    local ok, point, weights = pcall(traffic.resolve, c[1], c[2], "rule")
    out[i] = ok and { point = point, weights = weights }
      or { error = errors.describe(point), bad_input = errors.is(point, "bad_input") }
  end
  return out
end

local function second_rule(sim)
  local tgs = pair(1)
  sim:call("elbv2", "CreateRule", { ListenerArn = listener_of(1), Priority = 10,
    Conditions = { { Field = "path-pattern", Values = { "/v2/*" } } },
    Actions = { { Type = "forward", ForwardConfig = { TargetGroups = {
      { TargetGroupArn = tgs[1], Weight = 1 }, { TargetGroupArn = tgs[2], Weight = 1 } } } } } }, "control")
end

T.test("resolve's checks and errors are the same batched and unbatched", function()
  local got = {}
  for _, batching in ipairs { true, false } do
    local sim = fresh(2, batching)
    second_rule(sim)
    got[batching] = resolve_outcomes()
  end
  T.eq(got[true], got[false])
  local o = got[true]
  T.ok(o[1].bad_input and o[1].error:find("no listener rule forwards to all of the target groups"), o[1].error)
  T.ok(o[2].bad_input and o[2].error:find("several rules forward to these target groups"), o[2].error)
  T.ok(o[3].bad_input and o[3].error:find("listener rule .* does not exist"), o[3].error)
  T.ok(o[4].bad_input and o[4].error:find("listener .* does not exist"), o[4].error)
  T.ok(o[5].bad_input and o[5].error:find("expected a listener rule ARN"), o[5].error)
  T.ok(o[6].bad_input and o[6].error:find("expected a rule or listener ARN"), o[6].error)
  T.eq(o[7].point.kind, "listener")
  local tgs = pair(1)
  T.eq(o[7].weights, { [tgs[1]] = 100, [tgs[2]] = 0 }, "a listener given: its weights")
end)

T.test("a look-up joins the identical read in flight; receiving() and get() read fresh", function()
  fresh(3, true)
  local tgs = pair(1)
  local l1 = listener_of(1)
  delay.DescribeRules = 2 -- answers computed when sent, back 2 s later
  local t0 = sched.now()
  local first = sched.spawn(function()
    local point, weights = traffic.resolve(nil, tgs, "rule")
    return point, weights, sched.now()
  end)
  sched.sleep(1) -- its DescribeRules are in flight, answered 100/0
  T.eq(count("DescribeRules"), 3, "the first look-up's reads are sent")
  R.sim:call("elbv2", "ModifyListener", { ListenerArn = l1, DefaultActions = { { Type = "forward",
    ForwardConfig = { TargetGroups = { { TargetGroupArn = tgs[1], Weight = 90 },
      { TargetGroupArn = tgs[2], Weight = 10 } } } } } }, "control")
  local got = together {
    function() return traffic.resolve(nil, tgs, "rule") end,
    function() return traffic.receiving(tgs[2]) end,
    function() return traffic.get({ kind = "listener", arn = l1 }) end,
  }
  local point, weights, done = first:join()
  T.eq(done - t0, 2, "resolve: the three listeners' rules read at once")
  T.eq(point, { kind = "listener", arn = l1 })
  T.eq(weights, { [tgs[1]] = 100, [tgs[2]] = 0 }, "the first look-up: what was there when sent")
  T.ok(got[1][1], tostring(got[1][2]))
  T.eq(got[1][2], point, "the second look-up: the same point")
  T.eq(got[1][3], weights, "... from the answer in flight")
  T.eq(sched.now() - t0, 3, "receiving() waited for reads of its own")
  T.eq(count("DescribeRules"), 6, "three for both look-ups, three for receiving()")
  T.ok(got[2][1], tostring(got[2][2]))
  T.eq(#got[2][2], 1, "receiving(): the canary receives traffic now")
  T.eq(got[2][2][1].percent, 10)
  T.eq(got[2][2][1].point, { kind = "listener", arn = l1 })
  T.eq(got[3][2], { [tgs[1]] = 90, [tgs[2]] = 10 }, "get(): the weights now")
  -- nothing in flight: a look-up sends its own reads
  local again = { traffic.resolve(nil, tgs, "rule") }
  T.eq(again[2], { [tgs[1]] = 90, [tgs[2]] = 10 })
end)

T.test("read-only callers share one answer; a caller that may change its answer gets its own", function()
  fresh(2, true)
  local l1 = listener_of(1)
  local function rules(readonly)
    return function() return batch.call("elbv2", "DescribeRules", { ListenerArn = l1 }, { readonly = readonly }) end
  end
  local got = together { rules(true), rules(false), rules(true), rules(false) }
  local ro1, w1, ro2, w2 = got[1][2], got[2][2], got[3][2], got[4][2]
  T.eq(count("DescribeRules"), 1, "one call")
  T.ok(rawequal(ro1, ro2), "read-only callers: the one table")
  T.ok(not rawequal(w1, ro1) and not rawequal(w2, ro1) and not rawequal(w1, w2), "the others: their own")
  local want = json.encode(ro1)
  w1.Rules[1].Actions = nil
  w2.Rules = {}
  T.eq(json.encode(ro1), want, "a writer's change reaches no one else")
  T.ok(w1.Rules[1].Actions == nil and #w2.Rules == 0)
  -- the same instant again (remembered): read-only gets the shared answer, a writer a copy
  local ro3, w3 = rules(true)(), rules(false)()
  T.eq(count("DescribeRules"), 1, "remembered, not sent")
  T.ok(rawequal(ro3, ro1), "remembered for read-only callers as it is")
  T.ok(not rawequal(w3, ro1))
  w3.Rules[1].RuleArn = "changed"
  T.eq(json.encode(rules(true)()), want, "nor a writer's change of a remembered answer")
  -- callers that may all change theirs: each its own (the first the original)
  sched.sleep(1)
  got = together { rules(false), rules(false) }
  T.ok(not rawequal(got[1][2], got[2][2]))
  -- merged lists: the elements too
  sched.sleep(1)
  local function tgs(readonly)
    return function() return batch.call("elbv2", "DescribeTargetGroups", { Names = { "svc1-stable" } },
      { readonly = readonly }) end
  end
  got = together { tgs(false), tgs(true), tgs(true) }
  T.ok(rawequal(got[2][2].TargetGroups[1], got[3][2].TargetGroups[1]), "read-only: the same element")
  got[1][2].TargetGroups[1].TargetGroupName = "changed"
  T.eq(got[2][2].TargetGroups[1].TargetGroupName, "svc1-stable")
end)

T.test("call_each: requests asked at once, answered in order, each its own error; same unbatched", function()
  local out = {}
  for _, batching in ipairs { true, false } do
    fresh(2, batching)
    local l1, l2 = listener_of(1), listener_of(2)
    local missing = l1:gsub("/[^/]+$", "/0123456789abcdef")
    local t0 = sched.now()
    delay.DescribeRules = 1
    local oks, values = batch.call_each("elbv2", "DescribeRules",
      { { ListenerArn = l1 }, { ListenerArn = missing }, { ListenerArn = l2 } }, { readonly = true })
    out[batching] = { oks = oks, first = values[1], third = values[3],
      second = errors.is(values[2], "ListenerNotFound"), took = sched.now() - t0 }
    T.eq(count("DescribeRules"), 3)
  end
  T.eq(out[true].oks, { true, false, true })
  T.ok(out[true].second, "the missing listener's own error")
  T.eq(out[true].took, 1, "batched: all three in flight together")
  T.eq(out[false].took, 3, "unbatched: one after another")
  out[true].took, out[false].took = nil, nil
  T.eq(out[true], out[false], "the same answers")
  T.ok(#out[true].first.Rules == 1 and out[true].first.Rules[1].IsDefault)
end)

-- The fleet bench's canary on n pairs of one load balancer; → comparable reports, the final world.
local function rehearse(n, batching)
  local sim = fresh(n, batching)
  local list = {}
  for i = 1, n do list[i] = i end
  local reports = ecsplay.map(list, function(i)
    local canary_tg = ("svc%d-canary"):format(i)
    return rollout.canary {
      name = "svc" .. i, cluster = "production", image = "api:v2", container = "api", canary_count = 1,
      stable = { service = "svc" .. i, target_group = ("svc%d-stable"):format(i) },
      canary = { service = ("svc%d-canary"):format(i), target_group = canary_tg },
      steps = { 50, 100 }, bake = "2m", interval = "1m",
      gates = { gate.alb_5xx_rate { target_group = canary_tg, below = 1.0 } },
    }
  end)
  for i, r in ipairs(reports) do
    local c = {}
    for k, v in pairs(r) do if k ~= "run_id" and k ~= "journal" then c[k] = v end end
    reports[i] = c
  end
  local world = sim:handle { method = "GET", path = "/_sim/world", headers = {} }
  return { reports = reports, world = json.decode(world.body), now = sched.now(), received = received }
end

T.test("canaries sharing a load balancer: same reports and final world batched and not, rules read once", function()
  local n = 4
  local plain = rehearse(n, false)
  local batched = rehearse(n, true)
  for _, r in ipairs(batched.reports) do T.eq(r.status, "succeeded") end
  T.eq(batched.reports, plain.reports, "reports")
  T.eq(batched.world, plain.world, "final world")
  T.eq(batched.now, plain.now, "same end time")
  T.eq(plain.received[ELBV2 .. "DescribeRules"], n * n, "unbatched: every rollout reads every listener")
  T.eq(batched.received[ELBV2 .. "DescribeRules"], n, "batched: each listener once")
  T.eq(batched.received[ELBV2 .. "ModifyListener"], plain.received[ELBV2 .. "ModifyListener"], "changes are never merged")
  T.ok(batched.received[ELBV2 .. "DescribeTargetGroups"] < plain.received[ELBV2 .. "DescribeTargetGroups"], "target groups")
end)


-- What ModifyRule / ModifyListener answer, as an ELBv2 would, holding `thing` (the rule or the
-- listener; nil: an answer holding none).
local CHANGE = {
  rule = { op = "ModifyRule", read = "DescribeRules", list = "Rules", arns = "RuleArns", arn = "RuleArn",
    actions = "Actions" },
  listener = { op = "ModifyListener", read = "DescribeListeners", list = "Listeners", arns = "ListenerArns",
    arn = "ListenerArn", actions = "DefaultActions" },
}

local function change_answer(c, res, thing)
  local status, headers, body = query.encode_response(model.load("elbv2"), c.op, { [c.list] = { thing } })
  return { status = status or res.status, headers = headers or res.headers, body = body or res.body }
end

local function now_held(c, arn)
  return R.sim:call("elbv2", c.read, { [c.arns] = { arn } }, "control")[c.list][1]
end

T.test("a weight change is read back from the change's answer; an answer without the weights set "
  .. "is checked by a fresh read, and weights that read lacks are WeightsNotApplied", function()
  fresh(2, true)
  local listener_point = traffic.resolve(nil, pair(1), "rule")
  T.eq(listener_point.kind, "listener", "this world forwards from listeners' default actions")
  local tgs2 = pair(2)
  local rule = R.sim:call("elbv2", "CreateRule", { ListenerArn = listener_of(2), Priority = 1,
    Conditions = { { Field = "path-pattern", PathPatternConfig = { Values = { "/v2/*" } } } },
    Actions = { { Type = "forward", ForwardConfig = { TargetGroups = {
      { TargetGroupArn = tgs2[1], Weight = 100 }, { TargetGroupArn = tgs2[2], Weight = 0 } } } } } },
    "control").Rules[1]
  for _, case in ipairs { { point = listener_point, tgs = pair(1) }, { point = { kind = "rule", arn = rule.RuleArn },
    tgs = tgs2 } } do
    local point, tgs, c = case.point, case.tgs, CHANGE[case.point.kind]
    answer = {}
    local changes, reads = count(c.op), count(c.read)
    local got = traffic.set(point, { [tgs[1]] = 90, [tgs[2]] = 10 })
    T.eq(got, { [tgs[1]] = 90, [tgs[2]] = 10 }, c.op .. ": the weights it answered")
    T.eq(count(c.op), changes + 1)
    T.eq(count(c.read), reads, c.op .. "'s answer held them: no second read")

    -- an answer without the change (an emulator that answers less): a fresh read proves it
    answer[c.op] = function(res) return change_answer(c, res, nil) end
    got = traffic.set(point, { [tgs[1]] = 50, [tgs[2]] = 50 })
    T.eq(got, { [tgs[1]] = 50, [tgs[2]] = 50 })
    T.eq(count(c.read), reads + 1, "read back with " .. c.read)

    -- answered 200, yet the old weights stay: the answer and the fresh read say so
    local old = now_held(c, point.arn)
    answer[c.op] = function(res)
      R.sim:call("elbv2", c.op, { [c.arn] = point.arn, [c.actions] = old[c.actions] }, "control")
      return change_answer(c, res, now_held(c, point.arn))
    end
    local ok, err = pcall(traffic.set, point, { [tgs[1]] = 0, [tgs[2]] = 100 })
    T.ok(not ok, c.op .. ": not applied")
    T.eq(err.code, "WeightsNotApplied", errors.describe(err))
    T.ok(errors.describe(err):find("do not match what was set", 1, true), errors.describe(err))
    T.eq(count(c.read), reads + 2, "the fresh read that found the old weights")
    T.eq(count(c.op), changes + 3, "not retried: an AWS-side failure, not a blip")
    T.eq(traffic.get(point), { [tgs[1]] = 50, [tgs[2]] = 50 }, "the weights before the failed change")
  end
end)
