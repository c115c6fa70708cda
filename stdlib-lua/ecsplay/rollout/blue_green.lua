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
]]
local gate = require "ecsplay.gate"
local options = require "ecsplay.rollout.options"
local traffic = require "ecsplay.rollout.traffic"
local ecs_util = require "ecsplay.rollout.ecs_util"
local bake = require "ecsplay.rollout.bake"
local Run = require "ecsplay.rollout.run"

local M = {}

local S = "blue_green"

local ALLOWED = {
  cluster = true, blue = true, green = true, rule = true, listener = true, test_listener = true,
  image = true, container = true, task_definition = true, gates = true, test_gates = true,
  test_bake = true, keep_blue = true, interval = true, failure_limit = true,
  inconclusive_limit = true, error_limit = true, green_count = true, ready_timeout = true,
  on_abort = true, notify = true, journal = true, name = true,
}

local function ecs() return require "ecsplay.ecs" end
local short = ecs_util.short

local function check(o)
  options.check_keys(S, o, ALLOWED)
  local c = {}
  c.cluster = options.string(S, o, "cluster", "production")
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
  c.image, c.task_definition, c.container = options.new_version(S, o)
  c.keep_blue = options.duration(S, o, "keep_blue", 300)
  c.test_bake = options.duration(S, o, "test_bake", 60)
  c.ready_timeout = options.duration(S, o, "ready_timeout", 900)
  c.green_count = options.integer(S, o, "green_count", nil, 1)
  bake.check_options(options, S, o, c)
  if o.test_gates ~= nil and type(o.test_gates) ~= "table" and type(o.test_gates) ~= "function" then
    options.bad(S, "test_gates", "expected a list of gates (or a function(green) returning one)")
  end
  c.test_gates = o.test_gates
  c.name = options.string(S, o, "name", S .. " " .. c.blue.service)
  return c
end

local function tg_of(svc, side, field)
  local lbs = ecs_util.require_load_balancer(svc, field .. ".service")
  if side.target_group then
    local arn = traffic.target_group_arn(side.target_group, field .. ".target_group")
    for _, lb in ipairs(lbs) do if lb.targetGroupArn == arn then return arn end end
    options.bad(S, field .. ".target_group", string.format(
      "service `%s` is not registered in target group `%s`", svc.serviceName, side.target_group))
  end
  return lbs[1].targetGroupArn
end

local function prepare(c)
  local svcs = ecs_util.services(c.cluster, { c.blue.service, c.green.service },
    { "blue.service", "green.service" })
  local ctx = {}
  local a_tg = tg_of(svcs[1], c.blue, "blue")
  local b_tg = tg_of(svcs[2], c.green, "green")
  if a_tg == b_tg then
    options.bad(S, "green.target_group", "blue and green must use two different target groups")
  end
  ctx.point = traffic.resolve(c.rule, { a_tg, b_tg }, "rule")
  local sides = {
    { side = c.blue, svc = svcs[1], tg = a_tg, field = "blue" },
    { side = c.green, svc = svcs[2], tg = b_tg, field = "green" },
  }
  -- resumed: the journaled plan says which side was blue (traffic may be anywhere by now)
  local resume = Run.resuming(c.name)
  local plan = resume and type(resume.done.plan) == "table" and resume.done.plan or nil
  local a, b = 0, 0
  if not plan then
    local pct = traffic.percent(traffic.get(ctx.point))
    a, b = pct[a_tg] or 0, pct[b_tg] or 0
  end
  if plan then
    if plan.blue == sides[1].svc.serviceName and plan.green == sides[2].svc.serviceName then
      ctx.blue, ctx.green = sides[1], sides[2]
    elseif plan.blue == sides[2].svc.serviceName and plan.green == sides[1].svc.serviceName then
      ctx.blue, ctx.green = sides[2], sides[1]
      ctx.swapped_roles = true
    else
      options.bad(S, "blue/green", string.format("the journal's plan has blue `%s` and green `%s`, but the "
        .. "playbook now names `%s` and `%s`; resume with the same arguments", tostring(plan.blue),
        tostring(plan.green), sides[1].svc.serviceName, sides[2].svc.serviceName))
    end
  elseif a >= 99.5 then
    ctx.blue, ctx.green = sides[1], sides[2]
  elseif b >= 99.5 then
    -- the previous run swapped: the other service serves now
    ctx.blue, ctx.green = sides[2], sides[1]
    ctx.swapped_roles = true
  else
    options.bad(S, "rule", string.format("production traffic is split (%s %.0f%%, %s %.0f%%); blue/green "
      .. "needs one side at 100%% (a previous run may have stopped half-way: see `ecsplay rollback`)",
      c.blue.service, a, c.green.service, b))
  end
  for _, s in ipairs(sides) do
    s.name = s.side.target_group or s.tg:match("targetgroup/([^/]+)/")
    local ctl = s.svc.deploymentController and s.svc.deploymentController.type or "ECS"
    if ctl ~= "ECS" then
      options.bad(S, s.field .. ".service", string.format("service `%s` uses the %s deployment controller; "
        .. "blue/green here needs two ECS-controlled services%s", s.svc.serviceName, ctl,
        ctl == "CODE_DEPLOY" and " (use rollout.codedeploy for it)" or ""))
    end
  end
  ctx.names = { [a_tg] = sides[1].name, [b_tg] = sides[2].name }
  ctx.blue_weights = { [ctx.blue.tg] = 100, [ctx.green.tg] = 0 }
  ctx.green_weights = { [ctx.blue.tg] = 0, [ctx.green.tg] = 100 }
  if c.test_listener then
    ctx.test_point = traffic.resolve(c.test_listener, {}, "test_listener")
    -- resumed: the test listener may point at green already; its home is in the plan
    ctx.test_home = plan and type(plan.test_home) == "table" and plan.test_home or traffic.get(ctx.test_point)
    if next(ctx.test_home) == nil then
      options.bad(S, "test_listener", "it has no forward action to restore afterwards")
    end
  end
  if c.image then
    local td = ecs().describe_task_definition({ taskDefinition = ctx.blue.svc.taskDefinition }).taskDefinition
    if c.container then
      local names, found = {}, false
      for _, cd in ipairs(td.containerDefinitions or {}) do
        names[#names + 1] = cd.name
        if cd.name == c.container then found = true end
      end
      if not found then
        options.bad(S, "container", string.format("task definition %s has no container `%s` (it has: %s)",
          short(ctx.blue.svc.taskDefinition), c.container, table.concat(names, ", ")))
      end
    end
  end
  local green_side = { service = ctx.green.svc.serviceName, target_group = ctx.green.name }
  ctx.gates = bake.resolve_gates(options, S, c.gates, green_side)
  ctx.test_gates = c.test_gates and bake.resolve_gates(options, S, c.test_gates, green_side) or ctx.gates
  gate.prepare_all(ctx.gates, ctx)
  if ctx.test_gates ~= ctx.gates then gate.prepare_all(ctx.test_gates, ctx) end
  ctx.green_count = c.green_count or (plan and math.tointeger(plan.green_count))
    or math.max(1, ctx.blue.svc.desiredCount)
  ctx.plan = { blue = ctx.blue.svc.serviceName, green = ctx.green.svc.serviceName,
    green_count = ctx.green_count, test_home = ctx.test_home }
  return ctx
end

function M.run(o)
  local c = check(o)
  local ctx = prepare(c)
  local run = Run.new(S, c, { name = c.name })
  local report = run.report
  local blue, green = ctx.blue, ctx.green
  report.blue, report.green = blue.svc.serviceName, green.svc.serviceName
  return run:guard(function()
    run:step("plan", "which side is blue", function() return ctx.plan end)
    if ctx.swapped_roles then
      run:log("info", "roles", string.format("%s serves all traffic now, so it is blue; deploying onto %s",
        blue.svc.serviceName, green.svc.serviceName))
    end
    local new_td = c.task_definition or ecs_util.register_step(run, blue.svc.taskDefinition, c.image, c.container)
    report.task_definition = new_td
    run:step("scale_green", "start the new version on green", function()
      ecs().update_service { cluster = c.cluster, service = green.svc.serviceName, taskDefinition = new_td,
        desiredCount = ctx.green_count }
      run:log("info", "scale", string.format("green %s: %d task(s) of %s", green.svc.serviceName,
        ctx.green_count, short(new_td)))
    end, { op = "update_service", cluster = c.cluster, service = green.svc.serviceName,
           taskDefinition = green.svc.taskDefinition, desiredCount = green.svc.desiredCount })
    ecs_util.wait_ready(c.cluster, green.svc.serviceName, new_td, ctx.green_count, { green.tg }, c.ready_timeout)
    run:log("info", "ready", string.format("green %s healthy: %d target(s) in %s", green.svc.serviceName,
      ctx.green_count, green.name))
    local fields = { stable_target_group = blue.tg, canary_target_group = green.tg }
    if ctx.test_point then
      local test_w = {}
      for arn in pairs(ctx.test_home) do test_w[arn] = 0 end
      test_w[green.tg] = 100
      run:step("test_traffic", "point the test listener at green", function()
        traffic.set(ctx.test_point, test_w)
        run:log("info", "test", "test listener → " .. green.name)
      end, { op = "set_weights", point = ctx.test_point, weights = ctx.test_home })
      -- resumed after the swap: the test bake passed already
      if run:done("swap") then
        report.test_measurements = {}
      else
        local w = bake.watcher(run, c, ctx.test_gates, fields)
        w:bake(c.test_bake, { phase = "test" })
        report.test_measurements = w.rounds
      end
    else
      run:log("info", "test", "no test_listener given: skipping the test-traffic phase")
    end
    run:step("swap", "production traffic to green", function()
      traffic.set(ctx.point, ctx.green_weights)
      run:log("info", "swap", "production: " .. traffic.describe(ctx.green_weights, ctx.names))
    end, { op = "set_weights", point = ctx.point, weights = ctx.blue_weights })
    run:log("info", "keep_blue", string.format("keeping blue %s for %ds", blue.svc.serviceName,
      math.floor(c.keep_blue)))
    -- resumed past keep_blue (its success steps are journaled): it baked already
    if run:done("test_home") or run:done("scale_down_blue") then
      report.measurements = {}
    else
      local w = bake.watcher(run, c, ctx.gates, fields)
      w:bake(c.keep_blue, { phase = "keep_blue" })
      report.measurements = w.rounds
    end
    -- success from here on: nothing below is undone
    if ctx.test_point then
      run:step("test_home", "test listener back", function() traffic.set(ctx.test_point, ctx.test_home) end)
    end
    run:step("scale_down_blue", "scale blue to zero", function()
      ecs().update_service { cluster = c.cluster, service = blue.svc.serviceName, desiredCount = 0 }
    end)
    report.serving = green.svc.serviceName
    run:log("info", "summary", string.format("%s promoted: %s (%s) serves all traffic with %s; %s scaled to 0",
      c.name, green.svc.serviceName, green.name, short(new_td), blue.svc.serviceName))
  end)
end

return M
