--[[
rollout.blue_green: two ECS services, each behind its own target group, and
one ALB listener rule (or listener) that sends all production traffic to one
of them. Blue serves, green idles. The new version goes onto green; once its
targets are healthy, the test listener (when given) is pointed at green and
the gates bake there; then production swaps to green at once and the gates
bake for `keep_blue` while blue keeps running; finally blue scales to zero.
Any failure swaps production back to blue at once (it still runs), puts the
test listener back and scales green down again.

Which side is blue is read from the rule: the side with all the traffic. So
after a swap the next run deploys onto the other service; `gates` may be a
function(green) returning the list, green = { service=, target_group= }.
That decision is the run's first journaled step ("plan"): `ecsplay resume`
takes it from the journal, since after a kill mid-swap the traffic no longer
says which side was blue.
The options every strategy takes, and the run around the body, are in
rollout/strategy.lua.
]]
local duration = require "ecsplay.duration"
local gate = require "ecsplay.gate"
local ecs = require "ecsplay.ecs"
local strategy = require "ecsplay.rollout.strategy"
local options = require "ecsplay.rollout.options"
local traffic = require "ecsplay.rollout.traffic"
local ecs_util = require "ecsplay.rollout.ecs_util"
local bake = require "ecsplay.rollout.bake"

local S = "blue_green"

local short = ecs_util.short

local function check(c, o)
  c.blue = options.side(S, o, "blue", { service = "api", target_group = "api-stable" })
  c.green = options.side(S, o, "green", { service = "api-canary", target_group = "api-canary" })
  if not c.blue.service or not c.green.service then
    options.bad(S, "blue/green", "each side needs service = \"...\"")
  end
  if c.blue.service == c.green.service then
    options.bad(S, "green.service", "blue and green must be two different services")
  end
  if o.rule ~= nil and o.listener ~= nil then
    options.bad(S, "listener", "give rule= or listener=, not both")
  end
  c.rule = o.rule or o.listener
  c.test_listener = o.test_listener
  if c.test_listener ~= nil and type(c.test_listener) ~= "string" then
    options.bad(S, "test_listener", "expected a listener (or listener rule) ARN")
  end
  c.keep_blue = options.duration(S, o, "keep_blue", 300)
  c.test_bake = options.duration(S, o, "test_bake", 60)
  c.green_count = options.integer(S, o, "green_count", nil, 1)
  if o.test_gates ~= nil and type(o.test_gates) ~= "table" and type(o.test_gates) ~= "function" then
    options.bad(S, "test_gates", "expected a list of gates (or a function(green) returning one)")
  end
  c.test_gates = o.test_gates
end

--[[ Which side is blue: from the journaled plan when resumed (traffic may be
     anywhere by then), else the side with all the traffic. ]]
local function pick_blue(c, ctx, sides, plan)
  local a_tg, b_tg = sides[1].tg, sides[2].tg
  if plan then
    if plan.blue == sides[1].svc.serviceName and plan.green == sides[2].svc.serviceName then
      return sides[1], sides[2]
    elseif plan.blue == sides[2].svc.serviceName and plan.green == sides[1].svc.serviceName then
      return sides[2], sides[1], true
    end
    options.bad(S, "blue/green", string.format("the journal's plan has blue `%s` and green `%s`, but the "
      .. "playbook now names `%s` and `%s`; resume with the same arguments", tostring(plan.blue),
      tostring(plan.green), sides[1].svc.serviceName, sides[2].svc.serviceName))
  end
  local pct = traffic.percent(traffic.get(ctx.point))
  local a, b = pct[a_tg] or 0, pct[b_tg] or 0
  if a >= 99.5 then return sides[1], sides[2] end
  -- the previous run swapped: the other service serves now
  if b >= 99.5 then return sides[2], sides[1], true end
  options.bad(S, "rule", string.format("production traffic is split (%s %.0f%%, %s %.0f%%); blue/green "
    .. "needs one side at 100%% (a previous run may have stopped half-way: see `ecsplay rollback`)",
    c.blue.service, a, c.green.service, b))
end

local function prepare(c, r)
  local svcs = ecs_util.services(c.cluster, { c.blue.service, c.green.service },
    { "blue.service", "green.service" })
  local ctx = {}
  -- the target groups described here are passed to resolve, which then need not read them again
  local described, a_tg, b_tg = traffic.recording_target_groups(function()
    return ecs_util.side_target_group(S, svcs[1], c.blue.target_group, "blue"),
      ecs_util.side_target_group(S, svcs[2], c.green.target_group, "green")
  end)
  if a_tg == b_tg then
    options.bad(S, "green.target_group", "blue and green must use two different target groups")
  end
  ctx.point = traffic.resolve(c.rule, { a_tg, b_tg }, "rule", described)
  local sides = {
    { side = c.blue, svc = svcs[1], tg = a_tg, field = "blue" },
    { side = c.green, svc = svcs[2], tg = b_tg, field = "green" },
  }
  ctx.blue, ctx.green_side, ctx.swapped_roles = pick_blue(c, ctx, sides, r.plan)
  for _, s in ipairs(sides) do
    s.name = s.side.target_group or ecs_util.tg_name(s.tg)
    local ctl = s.svc.deploymentController and s.svc.deploymentController.type or "ECS"
    if ctl ~= "ECS" then
      options.bad(S, s.field .. ".service", string.format("service `%s` uses the %s deployment controller; "
        .. "blue/green here needs two ECS-controlled services%s", s.svc.serviceName, ctl,
        ctl == "CODE_DEPLOY" and " (use rollout.codedeploy for it)" or ""))
    end
  end
  local blue, green = ctx.blue, ctx.green_side
  ctx.names = { [a_tg] = sides[1].name, [b_tg] = sides[2].name }
  ctx.blue_weights = { [blue.tg] = 100, [green.tg] = 0 }
  ctx.green_weights = { [blue.tg] = 0, [green.tg] = 100 }
  if c.test_listener then
    ctx.test_point = traffic.resolve(c.test_listener, {}, "test_listener")
    -- resumed: the test listener may point at green already; its home is in the plan
    ctx.test_home = r.plan and type(r.plan.test_home) == "table" and r.plan.test_home
      or traffic.get(ctx.test_point)
    if next(ctx.test_home) == nil then
      options.bad(S, "test_listener", "it has no forward action to restore afterwards")
    end
  end
  ctx.base_td = blue.svc.taskDefinition
  ctx.green = { service = green.svc.serviceName, target_group = green.name }
  ctx.green_count = c.green_count or (r.plan and math.tointeger(r.plan.green_count))
    or math.max(1, blue.svc.desiredCount)
  -- blue's count before the run: what the undo of "scale blue to zero" puts back (from the
  -- plan when resumed, since blue may be at zero by then)
  ctx.blue_count = r.plan and math.tointeger(r.plan.blue_count) or blue.svc.desiredCount
  if ctx.blue_count == 0 then ctx.blue_count = ctx.green_count end
  ctx.plan = { blue = blue.svc.serviceName, green = green.svc.serviceName,
    green_count = ctx.green_count, blue_count = ctx.blue_count, test_home = ctx.test_home }
  ctx.report = { blue = blue.svc.serviceName, green = green.svc.serviceName }
  return ctx
end

-- The test gates (default: the gates), once the gates are known; they bake for test_bake.
local function verify(c, ctx)
  ctx.test_gates = ctx.gates
  if c.test_gates then
    ctx.test_gates = strategy.resolve_gates(S, c.test_gates, ctx.green, "test_gates")
    gate.prepare_all(ctx.test_gates, ctx)
  end
  strategy.check_periods(S, c, ctx.test_gates, { "test_bake" })
end

-- Green gets the new version and its targets become healthy.
local function start_green(run, c, ctx, new_td)
  local green = ctx.green_side
  run:step("scale_green", "start the new version on green", function()
    ecs.update_service { cluster = c.cluster, service = green.svc.serviceName, taskDefinition = new_td,
      desiredCount = ctx.green_count }
    run:log("info", "scale", string.format("green %s: %d task(s) of %s", green.svc.serviceName,
      ctx.green_count, short(new_td)))
  end, { op = "update_service", cluster = c.cluster, service = green.svc.serviceName,
         taskDefinition = green.svc.taskDefinition, desiredCount = green.svc.desiredCount })
  ecs_util.wait_ready(c.cluster, green.svc.serviceName, new_td, ctx.green_count, { green.tg }, c.ready_timeout)
  run:log("info", "ready", string.format("green %s healthy: %d target(s) in %s", green.svc.serviceName,
    ctx.green_count, green.name))
end

-- The test listener to green and the test gates baked there (when a test listener is given).
local function test_phase(run, c, ctx, fields)
  local green = ctx.green_side
  if not ctx.test_point then
    run:log("info", "test", "no test_listener given: skipping the test-traffic phase")
    return
  end
  local test_w = {}
  for arn in pairs(ctx.test_home) do test_w[arn] = 0 end
  test_w[green.tg] = 100
  run:step("test_traffic", "point the test listener at green", function()
    traffic.set(ctx.test_point, test_w)
    run:log("info", "test", "test listener → " .. green.name)
  end, { op = "set_weights", point = ctx.test_point, weights = ctx.test_home, test = true })
  -- resumed after the swap: the test bake passed already
  if run:done("swap") then
    run.report.test_measurements = {}
  else
    local w = bake.watcher(run, c, ctx.test_gates, fields)
    w:bake(c.test_bake, { phase = "test" })
    run.report.test_measurements = w.rounds
  end
end

local function body(run, c, ctx, new_td)
  local report = run.report
  local blue, green = ctx.blue, ctx.green_side
  if ctx.swapped_roles then
    run:log("info", "roles", string.format("%s serves all traffic now, so it is blue; deploying onto %s",
      blue.svc.serviceName, green.svc.serviceName))
  end
  start_green(run, c, ctx, new_td)
  local fields = { stable_target_group = blue.tg, canary_target_group = green.tg }
  test_phase(run, c, ctx, fields)
  run:step("swap", "production traffic to green", function()
    traffic.set(ctx.point, ctx.green_weights)
    run:log("info", "swap", "production: " .. traffic.describe(ctx.green_weights, ctx.names))
  end, { op = "set_weights", point = ctx.point, weights = ctx.blue_weights })
  run:log("info", "keep_blue", string.format("keeping blue %s for %s", blue.svc.serviceName,
    duration.format(c.keep_blue)))
  -- resumed past keep_blue (its success steps are journaled): it baked already
  if run:done("test_home") or run:done("scale_down_blue") then
    report.measurements = {}
  else
    local w = bake.watcher(run, c, ctx.gates, fields)
    w:bake(c.keep_blue, { phase = "keep_blue" })
    report.measurements = w.rounds
  end
  -- success from here on. Scaling blue to zero is the one step that cannot be undone by
  -- moving traffic: its undo brings blue back, healthy, before the swap's undo moves the
  -- traffic to it (a rollback of the finished run is then a safe revert)
  if ctx.test_point then
    run:step("test_home", "test listener back", function() traffic.set(ctx.test_point, ctx.test_home) end)
  end
  run:step("scale_down_blue", "scale blue to zero", function()
    ecs.update_service { cluster = c.cluster, service = blue.svc.serviceName, desiredCount = 0 }
  end, { op = "update_service", cluster = c.cluster, service = blue.svc.serviceName,
         taskDefinition = blue.svc.taskDefinition, desiredCount = ctx.blue_count,
         wait = { target_groups = { blue.tg }, timeout = c.ready_timeout } })
  report.serving = green.svc.serviceName
  run:log("info", "summary", string.format("%s promoted: %s (%s) serves all traffic with %s; %s scaled to 0",
    c.name, green.svc.serviceName, green.name, short(new_td), blue.svc.serviceName))
end

return strategy.define {
  name = S,
  takes = { cluster = "production", ready_timeout = 900 },
  own = { "blue", "green", "rule", "listener", "test_listener", "test_gates", "test_bake", "keep_blue",
    "green_count" },
  check = check,
  bakes = { "keep_blue" }, -- the test phase's bake is checked in verify, with the test gates
  default_name = function(c) return S .. " " .. c.blue.service end,
  prepare = prepare,
  verify = verify,
  plan_desc = "which side is blue",
  body = body,
}
