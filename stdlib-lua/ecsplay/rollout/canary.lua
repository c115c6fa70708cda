--[[
rollout.canary: two ECS services behind one ALB listener rule (stable and
canary target groups). The canary service gets the new version; traffic moves
to it in steps, baking at each with the gates measured every `interval`; at
the end the stable service is updated to the new version, traffic returns to
it, and the canary scales to zero. Any failure moves traffic back to stable
first, then scales the canary down (and puts stable back if it was updated).

rollout.linear{ step = 10, every = "1m", ... } is this with equal steps.
The options every strategy takes, and the run around the body, are in
rollout/strategy.lua.
]]
local strings = require "ecsplay.util.strings"
local sched = require "ecsplay.sched"
local ecs = require "ecsplay.ecs"
local tables = require "ecsplay.util.tables"
local strategy = require "ecsplay.rollout.strategy"
local options = require "ecsplay.rollout.options"
local traffic = require "ecsplay.rollout.traffic"
local ecs_util = require "ecsplay.rollout.ecs_util"
local bake = require "ecsplay.rollout.bake"
local approval = require "ecsplay.rollout.approval"
local control = require "ecsplay.rollout.control"

local short = ecs_util.short

local function check(c, o, label)
  c.stable = options.side(label, o, "stable", { service = "api", target_group = "api-stable" })
  c.canary = options.side(label, o, "canary", { service = "api-canary", target_group = "api-canary" })
  if not c.stable.service or not c.canary.service then
    options.bad(label, "stable/canary", "each side needs service = \"...\"")
  end
  c.steps, c.approvals = options.steps_with_approvals(label, o.steps)
  c.canary_count = options.integer(label, o, "canary_count", nil, 1)
  c.promote = options.boolean(label, o, "promote", true)
  c.rule = o.rule
end

-- Everything that can be checked before a change: returns the context.
local function prepare(c, r)
  local svcs = ecs_util.services(c.cluster, { c.stable.service, c.canary.service },
    { "stable.service", "canary.service" })
  local stable, canary = svcs[1], svcs[2]
  local ctx = { stable_svc = stable, canary_svc = canary, base_td = stable.taskDefinition }
  -- the target groups described here are passed to resolve, which then need not read them again
  local described
  described, ctx.stable_tg, ctx.canary_tg = traffic.recording_target_groups(function()
    return ecs_util.side_target_group(r.label, stable, c.stable.target_group, "stable"),
      ecs_util.side_target_group(r.label, canary, c.canary.target_group, "canary")
  end)
  -- and the weights it read with the rule (a moment ago, before any change of this run)
  local weights
  ctx.point, weights = traffic.resolve(c.rule, { ctx.stable_tg, ctx.canary_tg }, "rule", described)
  ctx.names = {
    [ctx.stable_tg] = c.stable.target_group or ecs_util.tg_name(ctx.stable_tg),
    [ctx.canary_tg] = c.canary.target_group or ecs_util.tg_name(ctx.canary_tg),
  }
  local pct = traffic.percent(weights)
  if (pct[ctx.canary_tg] or 0) > 0 and not r.resuming then
    options.bad(r.label, "rule", string.format("the canary already receives %.0f%% of traffic; "
      .. "a previous run may have stopped half-way (see .ecsplay/runs and `ecsplay rollback`)",
      pct[ctx.canary_tg]))
  end
  ctx.home = { [ctx.stable_tg] = 100, [ctx.canary_tg] = 0 }
  ctx.green = { service = canary.serviceName, target_group = ctx.names[ctx.canary_tg] }
  ctx.canary_count = c.canary_count or math.max(1, stable.desiredCount)
  return ctx
end

-- Starts the canary service on the new version and waits until it is healthy.
local function start_canary(run, c, ctx, new_td)
  run:step("scale_canary", "start the canary service", function()
    ecs.update_service { cluster = c.cluster, service = c.canary.service,
      taskDefinition = new_td, desiredCount = ctx.canary_count }
    run:log("info", "scale", string.format("canary %s: %d task(s) of %s", c.canary.service,
      ctx.canary_count, short(new_td)))
  end, { op = "update_service", cluster = c.cluster, service = c.canary.service,
         taskDefinition = ctx.canary_svc.taskDefinition, desiredCount = ctx.canary_svc.desiredCount })
  -- resumed past the first shift: the canary was healthy then (and may be scaled down by now)
  if run:done("weight:1") then return end
  ecs_util.wait_ready(c.cluster, c.canary.service, new_td, ctx.canary_count, { ctx.canary_tg },
    c.ready_timeout)
  run:log("info", "ready", string.format("canary %s healthy: %d task(s) in %s", c.canary.service,
    ctx.canary_count, ctx.names[ctx.canary_tg]))
end

-- Step i: the weight shift, then the bake with the gates measured every interval.
local function weight_step(run, c, ctx, i, w)
  local report = run.report
  local weights = { [ctx.stable_tg] = 100 - w, [ctx.canary_tg] = w }
  local step_ctx = { index = i, weight = w, steps = c.steps, report = report }
  if c.before_step then c.before_step(step_ctx) end
  run:step("weight:" .. i, string.format("shift %s%% to the canary", w), function()
    traffic.set(ctx.point, weights)
  end, { op = "set_weights", point = ctx.point, weights = ctx.home })
  run:log("info", "step", string.format("step %d/%d: %s", i, #c.steps,
    traffic.describe(weights, ctx.names)), { step = i, step_count = #c.steps, weight = w })
  local live = control.of(run)
  live:set_step({ index = i, of = #c.steps, weight = w },
    { [ctx.names[ctx.stable_tg]] = 100 - w, [ctx.names[ctx.canary_tg]] = w })
  local started = sched.now()
  -- resumed: a step whose successor (or the promotion) is journaled baked already
  local baked = run:done("weight:" .. (i + 1)) or (i == #c.steps and run:done("promote"))
  local rounds = {}
  -- `ecsplay promote --full`: straight to the last step, no bake
  if not baked and not live.full then
    local watcher = bake.watcher(run, c, ctx.gates, { stable_target_group = ctx.stable_tg,
      canary_target_group = ctx.canary_tg })
    watcher:bake(c.bake, { step = i, step_count = #c.steps, weight = w, phase = "step " .. i })
    rounds = watcher.rounds
  end
  report.steps[i] = { weight = w, started = started, ended = sched.now(), measurements = rounds }
  if c.after_step then c.after_step(step_ctx) end
end

--[[ The approval step before weight step k (k = #steps + 1: before the
     promotion), if the step list has one: the current weights hold, the
     gates measure (not before the first shift: the canary has no traffic). ]]
local function approval_step(run, c, ctx, k)
  local a = c.approvals[k]
  if not a then return end
  local label = k > #c.steps and "before the promotion" or string.format("before step %d/%d", k, #c.steps)
  run:step("approval:" .. k, "approval " .. label, function()
    local w = bake.watcher(run, c, k > 1 and ctx.gates or {}, { stable_target_group = ctx.stable_tg,
      canary_target_group = ctx.canary_tg })
    approval.wait(w, a, { step = k > 1 and k - 1 or nil, steps = #c.steps, weight = c.steps[k - 1] or 0,
      phase = "approval " .. label }, label)
  end)
end

-- A step `ecsplay promote --full` skipped, in the report.
local function skipped_step(run, i, w)
  local now = sched.now()
  run.report.steps[i] = { weight = w, started = now, ended = now, measurements = {}, skipped = true }
end

-- Promotion: stable takes the new version while the canary serves, then traffic goes home.
local function promote(run, c, ctx, new_td)
  run:step("promote", "update the stable service to the new version", function()
    ecs.update_service { cluster = c.cluster, service = c.stable.service, taskDefinition = new_td }
    run:log("info", "promote", "promoting: " .. c.stable.service .. " → " .. short(new_td))
  end, { op = "update_service", cluster = c.cluster, service = c.stable.service,
         taskDefinition = ctx.stable_svc.taskDefinition })
  if not run:done("home") then -- resumed past it: stable was ready then
    ecs_util.wait_ready(c.cluster, c.stable.service, new_td, ctx.stable_svc.desiredCount,
      { ctx.stable_tg }, c.ready_timeout)
  end
  run:step("home", "traffic back to the (now updated) stable service", function()
    traffic.set(ctx.point, ctx.home)
  end)
  control.of(run):set_step({ phase = "promoted" },
    { [ctx.names[ctx.stable_tg]] = 100, [ctx.names[ctx.canary_tg]] = 0 })
  run:step("scale_down", "scale the canary to zero", function()
    ecs.update_service { cluster = c.cluster, service = c.canary.service, desiredCount = 0 }
  end)
  run:log("info", "summary", string.format("%s promoted: %s now runs %s on %d task(s)", c.name,
    c.stable.service, short(new_td), ctx.stable_svc.desiredCount))
end

local M = strategy.define {
  name = "canary",
  takes = { cluster = "production", bake = 300, ready_timeout = 900, before_step = false,
    after_step = false },
  own = { "stable", "canary", "rule", "steps", "canary_count", "promote" },
  check = check,
  bakes = { "bake" },
  default_name = function(c, label) return label .. " " .. c.stable.service end,
  prepare = prepare,
  body = function(run, c, ctx, new_td)
    start_canary(run, c, ctx, new_td)
    local live = control.of(run)
    for i, w in ipairs(c.steps) do
      if not live.full then approval_step(run, c, ctx, i) end
      if live.full and i < #c.steps then skipped_step(run, i, w) else weight_step(run, c, ctx, i, w) end
    end
    if not live.full then approval_step(run, c, ctx, #c.steps + 1) end
    if c.promote then promote(run, c, ctx, new_td) end
  end,
}

--[[ rollout.linear{ step = 10, every = "1m", ... }: canary with equal steps
     of `step` percent, baking `every` at each. linear_options(o) → the
     canary options it stands for (what `ecsplay lint` checks). ]]
function M.linear_options(o)
  if type(o) ~= "table" then
    options.bad("linear", nil, "expected a table of options, got " .. strings.describe_value(o))
  end
  local copy = tables.shallow_copy(o)
  local step = copy.step or 10
  if type(step) ~= "number" or step <= 0 or step > 100 then
    options.bad("linear", "step", "expected a percentage above 0 and at most 100, got "
      .. strings.describe_value(step))
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
  return copy
end

function M.linear(o) return M.run(M.linear_options(o), "linear") end

return M
