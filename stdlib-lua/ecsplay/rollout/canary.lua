--[[
rollout.canary: two ECS services behind one ALB listener rule (stable and
canary target groups). The canary service gets the new image; traffic moves
to it in steps, baking at each with the gates measured every `interval`; at
the end the stable service is updated to the new version, traffic returns to
it, and the canary scales to zero. Any failure moves traffic back to stable
first, then scales the canary down (and puts stable back if it was updated).

rollout.linear{ step = 10, every = "1m", ... } is this with equal steps.
]]
local sched = require "ecsplay.sched"
local gate = require "ecsplay.gate"
local options = require "ecsplay.rollout.options"
local traffic = require "ecsplay.rollout.traffic"
local ecs_util = require "ecsplay.rollout.ecs_util"
local Run = require "ecsplay.rollout.run"
local bake = require "ecsplay.rollout.bake"

local M = {}

local ALLOWED = {
  cluster = true, stable = true, canary = true, rule = true, image = true, container = true,
  task_definition = true, steps = true, bake = true, interval = true, gates = true,
  failure_limit = true, inconclusive_limit = true, error_limit = true, canary_count = true,
  ready_timeout = true, before_step = true, after_step = true, on_abort = true, notify = true,
  journal = true, name = true, promote = true,
}

local function check(strategy, o)
  options.check_keys(strategy, o, ALLOWED)
  local c = {}
  c.cluster = options.string(strategy, o, "cluster", "production")
  c.stable = options.side(strategy, o, "stable", { service = "api", target_group = "api-stable" })
  c.canary = options.side(strategy, o, "canary", { service = "api-canary", target_group = "api-canary" })
  if not c.stable.service or not c.canary.service then
    options.bad(strategy, "stable/canary", "each side needs service = \"...\"")
  end
  c.image, c.task_definition, c.container = options.new_version(strategy, o)
  c.steps = options.steps(strategy, o.steps)
  c.bake = options.duration(strategy, o, "bake", 300)
  bake.check_options(options, strategy, o, c) -- interval, limits, gates, hooks, journal
  if type(c.gates) ~= "table" then options.bad(strategy, "gates", "expected a list of gates") end
  c.ready_timeout = options.duration(strategy, o, "ready_timeout", 900)
  c.canary_count = options.integer(strategy, o, "canary_count", nil, 1)
  c.before_step = options.func(strategy, o, "before_step")
  c.after_step = options.func(strategy, o, "after_step")
  c.promote = o.promote ~= false
  c.rule = o.rule
  c.name = options.string(strategy, o, "name", strategy .. " " .. c.stable.service)
  return c
end

-- Everything that can be checked before a change: returns the context.
local function prepare(strategy, c)
  local svcs = ecs_util.services(c.cluster, { c.stable.service, c.canary.service },
    { "stable.service", "canary.service" })
  local stable, canary = svcs[1], svcs[2]
  local function tg_of(svc, side, field)
    local lbs = ecs_util.require_load_balancer(svc, field)
    if side.target_group then
      local arn = traffic.target_group_arn(side.target_group, field:gsub("service", "target_group"))
      for _, lb in ipairs(lbs) do if lb.targetGroupArn == arn then return arn end end
      options.bad(strategy, field:gsub("service", "target_group"), string.format(
        "service `%s` is not registered in target group `%s`", svc.serviceName, side.target_group))
    end
    return lbs[1].targetGroupArn
  end
  local ctx = { stable_svc = stable, canary_svc = canary }
  ctx.stable_tg = tg_of(stable, c.stable, "stable.service")
  ctx.canary_tg = tg_of(canary, c.canary, "canary.service")
  ctx.point = traffic.resolve(c.rule, { ctx.stable_tg, ctx.canary_tg }, "rule")
  ctx.names = {
    [ctx.stable_tg] = c.stable.target_group or ctx.stable_tg:match("targetgroup/([^/]+)/"),
    [ctx.canary_tg] = c.canary.target_group or ctx.canary_tg:match("targetgroup/([^/]+)/"),
  }
  local pct = traffic.percent(traffic.get(ctx.point))
  if (pct[ctx.canary_tg] or 0) > 0 and not Run.resuming(c.name) then
    options.bad(strategy, "rule", string.format("the canary already receives %.0f%% of traffic; "
      .. "a previous run may have stopped half-way (see .ecsplay/runs and `ecsplay rollback`)",
      pct[ctx.canary_tg]))
  end
  ctx.home = { [ctx.stable_tg] = 100, [ctx.canary_tg] = 0 }
  gate.prepare_all(c.gates, ctx)
  ctx.canary_count = c.canary_count or math.max(1, stable.desiredCount)
  return ctx
end

-- Bakes at one step with the gates measured every interval (rollout/bake.lua);
-- returns the measurements.
local function bake_step(run, c, ctx, index, weight)
  local w = bake.watcher(run, c, c.gates, { stable_target_group = ctx.stable_tg,
    canary_target_group = ctx.canary_tg })
  w:bake(c.bake, { step = index, weight = weight, phase = "step " .. index })
  return w.rounds
end

function M.run(o, strategy)
  strategy = strategy or "canary"
  local c = check(strategy, o)
  local ctx = prepare(strategy, c)
  local run = Run.new(strategy, c, { name = c.name })
  local report = run.report
  report.steps = {}
  return run:guard(function()
    local new_td = c.task_definition or ecs_util.register_step(run, ctx.stable_svc.taskDefinition, c.image, c.container)
    report.task_definition = new_td
    run:step("scale_canary", "start the canary service", function()
      require("ecsplay.ecs").update_service { cluster = c.cluster, service = c.canary.service,
        taskDefinition = new_td, desiredCount = ctx.canary_count }
      run:log("info", "scale", string.format("canary %s: %d task(s) of %s", c.canary.service,
        ctx.canary_count, new_td:match("task%-definition/(.+)$")))
    end, { op = "update_service", cluster = c.cluster, service = c.canary.service,
           taskDefinition = ctx.canary_svc.taskDefinition, desiredCount = ctx.canary_svc.desiredCount })
    ecs_util.wait_ready(c.cluster, c.canary.service, new_td, ctx.canary_count, { ctx.canary_tg },
      c.ready_timeout)
    run:log("info", "ready", string.format("canary %s healthy: %d task(s) in %s", c.canary.service,
      ctx.canary_count, ctx.names[ctx.canary_tg]))
    for i, w in ipairs(c.steps) do
      local weights = { [ctx.stable_tg] = 100 - w, [ctx.canary_tg] = w }
      local step_ctx = { index = i, weight = w, steps = c.steps, report = report }
      if c.before_step then c.before_step(step_ctx) end
      run:step("weight:" .. i, string.format("shift %s%% to the canary", w), function()
        traffic.set(ctx.point, weights)
      end, { op = "set_weights", point = ctx.point, weights = ctx.home })
      run:log("info", "step", string.format("step %d/%d: %s", i, #c.steps,
        traffic.describe(weights, ctx.names)), { step = i, weight = w })
      local started = sched.now()
      -- resumed: a step whose successor (or the promotion) is journaled baked already
      local baked = run:done("weight:" .. (i + 1)) or (i == #c.steps and run:done("promote"))
      local rounds = baked and {} or bake_step(run, c, ctx, i, w)
      report.steps[i] = { weight = w, started = started, ended = sched.now(), measurements = rounds }
      if c.after_step then c.after_step(step_ctx) end
    end
    if not c.promote then return end
    -- promotion: stable takes the new version while the canary serves
    run:step("promote", "update the stable service to the new version", function()
      require("ecsplay.ecs").update_service { cluster = c.cluster, service = c.stable.service,
        taskDefinition = new_td }
      run:log("info", "promote", "promoting: " .. c.stable.service .. " → " .. new_td:match("task%-definition/(.+)$"))
    end, { op = "update_service", cluster = c.cluster, service = c.stable.service,
           taskDefinition = ctx.stable_svc.taskDefinition })
    ecs_util.wait_ready(c.cluster, c.stable.service, new_td, ctx.stable_svc.desiredCount,
      { ctx.stable_tg }, c.ready_timeout)
    run:step("home", "traffic back to the (now updated) stable service", function()
      traffic.set(ctx.point, ctx.home)
    end)
    run:step("scale_down", "scale the canary to zero", function()
      require("ecsplay.ecs").update_service { cluster = c.cluster, service = c.canary.service, desiredCount = 0 }
    end)
    run:log("info", "summary", string.format("%s promoted: %s now runs %s on %d task(s)", c.name,
      c.stable.service, new_td:match("task%-definition/(.+)$"), ctx.stable_svc.desiredCount))
  end)
end

--[[ rollout.linear{ step = 10, every = "1m", ... }: canary with equal steps
     of `step` percent, baking `every` at each. ]]
function M.linear(o)
  if type(o) ~= "table" then options.bad("linear", nil, "expected a table of options") end
  local copy = {}
  for k, v in pairs(o) do copy[k] = v end
  local step = copy.step or 10
  if type(step) ~= "number" or step <= 0 or step > 100 then
    options.bad("linear", "step", "expected a percentage above 0 and at most 100, got " .. tostring(step))
  end
  if copy.steps ~= nil then options.bad("linear", "steps", "give step = N (equal steps); use rollout.canary for a list") end
  local steps = {}
  local w = step
  while w < 100 do steps[#steps + 1] = w w = w + step end
  steps[#steps + 1] = 100
  copy.step = nil
  copy.steps = steps
  if copy.every ~= nil then copy.bake = copy.every end
  copy.every = nil
  return M.run(copy, "linear")
end

return M
